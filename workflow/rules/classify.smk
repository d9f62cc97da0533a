rule classify:
    """A classifier's top-5 classes and softmax scores for every image of a split, in
    manifest order: Top-1/Top-5 Loc and the class-wise w* picked by top-1 (docs/classifiers.md)."""
    input:
        manifest="results/{dataset}/manifest/{split}.csv",
        checkpoints=classifier_checkpoints,
    output:
        "results/{dataset}/classifiers/{classifier}/{split}.h5",
    params:
        classifier=classifier_config,
    resources:
        gpu=1,
    threads: 2
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/classifiers/{classifier}/{split}.log",
    benchmark:
        "benchmarks/{dataset}/classifiers/{classifier}/{split}.tsv"
    script:
        "../scripts/classify.py"
