from rpsloc.datasets.policy import gather_skipped
from rpsloc.logging import to_log
from rpsloc.report import split_results, write_summary

with to_log(snakemake.log[0]):
    skipped = gather_skipped(
        dict(zip(snakemake.params.splits, snakemake.input.skipped, strict=True)),
        snakemake.output.skipped,
    )
    write_summary(
        dataset=snakemake.wildcards.dataset,
        results=split_results(snakemake.params.results),
        threshold_split=snakemake.params.threshold_split,
        out=snakemake.output[0],
        skipped=skipped,
    )
