from rpsloc.logging import to_log
from rpsloc.report import write_paper_table

with to_log(snakemake.log[0]):
    write_paper_table(
        summaries=list(snakemake.input),
        out_csv=snakemake.output.csv,
        out_markdown=snakemake.output.markdown,
    )
