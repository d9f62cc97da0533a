rule representer:
    """w* (global or per class, from all or a sampled subset of the training images) and every
    kept training image's representer vector and values (METHOD.md section 1)."""
    input:
        train_shards,
    output:
        "results/{dataset}/{backbone}/representer/{selection}.h5",
    params:
        settings=representer_settings,
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/{backbone}/representer/{selection}.log",
    benchmark:
        "benchmarks/{dataset}/{backbone}/representer/{selection}.tsv"
    script:
        "../scripts/representer.py"
