rule metrics:
    """BoxAcc per protocol, IoU and threshold; MaxBoxAccV2, MaxBoxAcc, PxAP (METHOD.md 3);
    per-image best IoUs and the pixel precision-recall curve, for the report's figures."""
    input:
        maps="results/{dataset}/{backbone}/{variant}/maps/{split}.h5",
        shards=eval_shards,
        manifest="results/{dataset}/manifest/{split}.csv",
        predictions=classifier_predictions,
    output:
        table="results/{dataset}/{backbone}/{variant}/metrics/{split}.csv",
        summary="results/{dataset}/{backbone}/{variant}/metrics/{split}.json",
        images="results/{dataset}/{backbone}/{variant}/metrics/{split}-images.csv",
        curve="results/{dataset}/{backbone}/{variant}/metrics/{split}-pr.csv",
    params:
        interval=config["evaluation"]["cam_curve_interval"],
        iou_thresholds=config["evaluation"]["iou_thresholds"],
    threads: 2
    conda:
        "../../environment.yml"
    log:
        "logs/{dataset}/{backbone}/{variant}/metrics/{split}.log",
    benchmark:
        "benchmarks/{dataset}/{backbone}/{variant}/metrics/{split}.tsv"
    script:
        "../scripts/metrics.py"
