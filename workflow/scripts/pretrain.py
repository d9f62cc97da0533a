import torch

from rpsloc.logging import to_log
from rpsloc.pretrain import pretrain
from rpsloc.settings import PretrainSettings

with to_log(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    pretrain(
        manifest=snakemake.input[0],
        backbone_config=snakemake.params.backbone,
        settings=PretrainSettings(**snakemake.params.settings),
        checkpoint=snakemake.output.checkpoint,
        losses=snakemake.output.losses,
    )
