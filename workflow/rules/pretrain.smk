rule pretrain:
    """A backbone trained self-supervised (SimCLR) on a dataset's unlabeled training images, for
    backbones with `weights: pretrain` (docs/pretraining.md)."""
    input:
        pretrain_manifest,
    output:
        checkpoint="results/pretrain/{backbone}/checkpoint.pth",
        losses="results/pretrain/{backbone}/loss.csv",
        plot="results/pretrain/{backbone}/loss.png",
    wildcard_constraints:
        backbone=PRETRAINED_BACKBONES,
    params:
        backbone=lambda wildcards: config["backbones"][wildcards.backbone],
        device=config["features"]["device"],
    resources:
        gpu=1,
    threads: 2
    conda:
        "../../environment.yml"
    log:
        "logs/pretrain/{backbone}.log",
    benchmark:
        "benchmarks/pretrain/{backbone}.tsv"
    script:
        "../scripts/pretrain.py"
