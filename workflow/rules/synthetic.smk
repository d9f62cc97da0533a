rule synthetic:
    """The built-in synthetic dataset in WSOL metadata layout (no download)."""
    output:
        directory(paths.SYNTHETIC),
    params:
        synthetic=lambda wildcards: get_dataset(wildcards).synthetic,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.SYNTHETIC),
    benchmark:
        paths.benchmark_of(paths.SYNTHETIC)
    script:
        "../scripts/synthetic.py"
