rule synth:
    """The built-in synthetic dataset in WSOL metadata layout (no download)."""
    output:
        directory("results/{dataset}/synthetic"),
    params:
        synthetic=lambda wildcards: dataset_config(wildcards)["synthetic"],
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/synth.log",
    benchmark:
        "benchmarks/{dataset}/synth.tsv"
    script:
        "../scripts/synth.py"
