rule maps:
    """Activation maps of one split at feature resolution, for one variant or baseline."""
    input:
        shards=eval_shards,
        representer=representer_file,
        predictions=predictions_file,
    output:
        "results/{dataset}/{backbone}/{variant}/maps/{split}.h5",
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/{backbone}/{variant}/maps/{split}.log",
    benchmark:
        "benchmarks/{dataset}/{backbone}/{variant}/maps/{split}.tsv"
    script:
        "../scripts/maps.py"
