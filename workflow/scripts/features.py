import torch

from rpsloc.features import extract_shard
from rpsloc.io import config_hash
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    settings = snakemake.params.features
    geometry = snakemake.params.geometry
    extract_shard(
        manifest=snakemake.input.manifest,
        role=snakemake.params.role,
        shard=int(snakemake.wildcards.shard),
        shard_size=settings["shard_size"],
        backbone_config=snakemake.params.backbone,
        image_size=geometry["image_size"],
        crop_size=geometry["crop_size"],
        output_stride=geometry["output_stride"],
        out=snakemake.output[0],
        batch_size=settings["batch_size"],
        num_workers=settings["num_workers"],
        device=settings["device"],
        precision=settings["precision"],
        discovery=snakemake.params.discovery,
        checkpoint_record=snakemake.input.get("checkpoint_record") or None,
        provenance={
            "dataset": snakemake.wildcards.dataset,
            "split": snakemake.wildcards.split,
            "backbone": snakemake.wildcards.backbone,
            "config_hash": config_hash(dict(snakemake.params.items())),
        },
    )
