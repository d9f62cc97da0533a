from rpsloc.datasets import build_split, write_manifest, write_skipped
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    dataset = dict(snakemake.params.dataset, name=snakemake.wildcards.dataset)
    if snakemake.input.synthetic:
        dataset["root"] = snakemake.input.synthetic
    split = build_split(dataset, snakemake.wildcards.split, work_dir=snakemake.params.work_dir)
    write_manifest(split.records, snakemake.output[0])
    write_skipped(split.skipped, snakemake.output.skipped)
