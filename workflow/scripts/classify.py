import torch

from rpsloc.classify import predict_split
from rpsloc.hashing import config_hash
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    settings = snakemake.params.features
    predict_split(
        manifest=snakemake.input.manifest,
        classifier_config=snakemake.params.classifier,
        out=snakemake.output[0],
        batch_size=settings["batch_size"],
        num_workers=settings["num_workers"],
        device=settings["device"],
        provenance={
            "dataset": snakemake.wildcards.dataset,
            "split": snakemake.wildcards.split,
            "classifier": snakemake.wildcards.classifier,
            "config_hash": config_hash(dict(snakemake.params.classifier)),
        },
    )
