from rpsloc.extraction_server import ShardJob, run_features_job
from rpsloc.hashing import config_hash

settings = snakemake.params.features
geometry = snakemake.params.geometry
job = ShardJob(
    arguments={
        "manifest": snakemake.input.manifest,
        "role": snakemake.params.role,
        "shard": int(snakemake.wildcards.shard),
        "shard_size": settings["shard_size"],
        "backbone_config": snakemake.params.backbone,
        "image_size": geometry["image_size"],
        "crop_size": geometry["crop_size"],
        "output_stride": geometry["output_stride"],
        "out": snakemake.output[0],
        "batch_size": settings["batch_size"],
        "num_workers": settings["num_workers"],
        "device": settings["device"],
        "precision": settings["precision"],
        "discovery": list(snakemake.params.discovery),
        "checkpoint_record": snakemake.input.get("checkpoint_record") or None,
        "provenance": {
            "dataset": snakemake.wildcards.dataset,
            "split": snakemake.wildcards.split,
            "backbone": snakemake.wildcards.backbone,
            "config_hash": config_hash(dict(snakemake.params.items())),
        },
    },
    log=snakemake.log[0],
    threads=snakemake.threads,
)
run_features_job(job, warm_process=settings["warm_process"])
