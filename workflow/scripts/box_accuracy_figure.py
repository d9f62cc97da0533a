from rpsloc.logging import to_log
from rpsloc.report import plot_box_accuracy, split_results

with to_log(snakemake.log[0]):
    plot_box_accuracy(
        split_results(snakemake.params.results), snakemake.params.split, snakemake.output[0]
    )
