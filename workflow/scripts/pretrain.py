import torch

from rpsloc.logging import to_log
from rpsloc.pretrain import PretrainSettings, pretrain

with to_log(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    backbone = snakemake.params.backbone
    pretrain(
        manifest=snakemake.input[0],
        backbone_config=backbone,
        settings=PretrainSettings.from_config(
            {**backbone["pretrain"], "device": snakemake.params.device}
        ),
        checkpoint=snakemake.output.checkpoint,
        losses=snakemake.output.losses,
        plot=snakemake.output.plot,
    )
