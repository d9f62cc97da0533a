# rpsloc: unsupervised object localization with representer point selection (ICCV 2023).
# Stages, one rule file each: synth -> manifest -> features -> representer -> maps -> metrics
# -> summary. Run `snakemake --cores N <dataset>` or `snakemake --cores N` for every dataset.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/representer.smk"
include: "workflow/rules/classify.smk"
include: "workflow/rules/maps.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/explanations.smk"
include: "workflow/rules/summary.smk"


rule all:
    """Every configured dataset's summary, figures and explanations, and the cross-dataset
    table."""
    input:
        [dataset_outputs(name) for name in config["datasets"]],
        "results/tables/summary.csv",
    default_target: True


# One target rule per dataset, named after it: `snakemake --cores 8 demo`.
for dataset_name in config["datasets"]:

    rule:
        name:
            dataset_name
        input:
            dataset_outputs(dataset_name),
