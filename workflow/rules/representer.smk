rule representer:
    """w*, c, and every training image's representer vector and values (METHOD.md section 1)."""
    input:
        train_shards,
    output:
        "results/{dataset}/{backbone}/representer.h5",
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/{backbone}/representer.log",
    benchmark:
        "benchmarks/{dataset}/{backbone}/representer.tsv"
    script:
        "../scripts/representer.py"
