from rpsloc.logging import to_log
from rpsloc.report import split_results, write_summary

with to_log(snakemake.log[0]):
    write_summary(
        dataset=snakemake.wildcards.dataset,
        results=split_results(snakemake.params.results),
        threshold_split=snakemake.params.threshold_split,
        out=snakemake.output[0],
    )
