from rpsloc.datasets import build_manifest, write_manifest
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    dataset = dict(snakemake.params.dataset)
    if snakemake.input.synthetic:
        dataset["root"] = snakemake.input.synthetic
    write_manifest(build_manifest(dataset, snakemake.wildcards.split), snakemake.output[0])
