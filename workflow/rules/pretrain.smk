rule pretrain:
    """A backbone trained self-supervised (SimCLR) on a dataset's unlabeled training images, for
    backbones with `weights: pretrain` (docs/pretraining.md)."""
    input:
        get_pretrain_manifest,
    output:
        checkpoint=paths.PRETRAIN_CHECKPOINT,
        losses=paths.PRETRAIN_LOSSES,
    wildcard_constraints:
        backbone=_alternatives(SETTINGS.pretrained),
    params:
        backbone=get_backbone_model,
        settings=get_pretrain_settings,
    resources:
        gpu=1,
    threads: 2
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.PRETRAIN_CHECKPOINT),
    benchmark:
        paths.benchmark_of(paths.PRETRAIN_CHECKPOINT)
    script:
        "../scripts/pretrain.py"
