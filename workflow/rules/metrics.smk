rule metrics:
    """BoxAcc per protocol, IoU and threshold; MaxBoxAccV2, MaxBoxAcc, PxAP (METHOD.md 3)."""
    input:
        maps="results/{dataset}/{backbone}/{variant}/maps/{split}.h5",
        shards=eval_shards,
        manifest="results/{dataset}/manifest/{split}.csv",
    output:
        table="results/{dataset}/{backbone}/{variant}/metrics/{split}.csv",
        summary="results/{dataset}/{backbone}/{variant}/metrics/{split}.json",
    params:
        interval=config["evaluation"]["cam_curve_interval"],
        iou_thresholds=config["evaluation"]["iou_thresholds"],
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/{backbone}/{variant}/metrics/{split}.log",
    benchmark:
        "benchmarks/{dataset}/{backbone}/{variant}/metrics/{split}.tsv"
    script:
        "../scripts/metrics.py"
