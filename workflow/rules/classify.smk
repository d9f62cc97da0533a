rule classify:
    """A classifier's top-5 classes and softmax scores for every image of a split, in
    manifest order: Top-1/Top-5 Loc and the class-wise w* picked by top-1 (docs/classifiers.md)."""
    input:
        manifest=get_manifest,
        checkpoints=get_classifier_checkpoints,
    output:
        paths.PREDICTIONS,
    params:
        classifier=get_classifier,
        features=FEATURES,
    resources:
        gpu=1,
    threads: 2
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.PREDICTIONS),
    benchmark:
        paths.benchmark_of(paths.PREDICTIONS)
    script:
        "../scripts/classify.py"
