rule training_ranking:
    """Training images ranked by representer value r_n . w* (which define "foreground")."""
    input:
        representer=get_global_representer,
    output:
        paths.TRAINING_RANKING,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.TRAINING_RANKING),
    benchmark:
        paths.benchmark_of(paths.TRAINING_RANKING)
    script:
        "../scripts/explanations.py"


rule test_explanations:
    """Per test image, the training images that support and oppose its foreground most."""
    input:
        representer=get_global_representer,
        shards=get_eval_shards,
    output:
        paths.EXPLANATIONS,
    params:
        explanations=EXPLANATIONS,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.EXPLANATIONS),
    benchmark:
        paths.benchmark_of(paths.EXPLANATIONS)
    script:
        "../scripts/explanations.py"


rule selection_curve:
    """MaxBoxAccV2 of w* rebuilt from only the top-m training images, for a sweep of m."""
    input:
        representer=get_global_representer,
        shards=get_eval_shards,
    output:
        paths.SELECTION_CURVE,
    params:
        explanations=EXPLANATIONS,
        evaluation=EVALUATION,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.SELECTION_CURVE),
    benchmark:
        paths.benchmark_of(paths.SELECTION_CURVE)
    script:
        "../scripts/explanations.py"
