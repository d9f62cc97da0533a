from rpsloc.logging import to_log
from rpsloc.summary import gather_skipped, write_paper_table, write_summary


def summary():
    skipped = gather_skipped(
        dict(zip(snakemake.params.splits, snakemake.input.skipped, strict=True)),
        snakemake.output.skipped,
    )
    write_summary(
        dataset=snakemake.wildcards.dataset,
        results=snakemake.params.results,
        threshold_split=snakemake.params.threshold_split,
        out=snakemake.output[0],
        skipped=skipped,
        labelled=snakemake.params.labelled,
    )


def tables():
    write_paper_table(
        summaries=list(snakemake.input),
        out_csv=snakemake.output.csv,
        out_markdown=snakemake.output.markdown,
    )


with to_log(snakemake.log[0]):
    {"summary": summary, "tables": tables}[snakemake.rule]()
