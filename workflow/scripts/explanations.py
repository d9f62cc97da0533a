from rpsloc import explanations
from rpsloc.logging import to_log

STAGES = {
    "training_ranking": lambda: explanations.write_training_ranking(
        snakemake.input.representer, snakemake.output[0]
    ),
    "test_explanations": lambda: explanations.write_test_explanations(
        representer=snakemake.input.representer,
        eval_shards=list(snakemake.input.shards),
        out=snakemake.output[0],
        top_k=snakemake.params.explanations["top_k"],
        provenance={"split": snakemake.wildcards.split},
    ),
    "selection_curve": lambda: explanations.write_selection_curve(
        representer=snakemake.input.representer,
        eval_shards=list(snakemake.input.shards),
        out=snakemake.output[0],
        sizes=snakemake.params.explanations["selection_sizes"],
        interval=snakemake.params.evaluation["interval"],
        iou_thresholds=snakemake.params.evaluation["iou_thresholds"],
    ),
}

with to_log(snakemake.log[0]):
    STAGES[snakemake.rule]()
