from rpsloc.logging import to_log
from rpsloc.manifest import write_split_manifest

with to_log(snakemake.log[0]):
    write_split_manifest(
        dataset=snakemake.params.dataset,
        split=snakemake.wildcards.split,
        out=snakemake.output[0],
        out_skipped=snakemake.output.skipped,
        work_dir=snakemake.params.work_dir,
        name=snakemake.wildcards.dataset,
        root=snakemake.input.synthetic or None,
        evaluated=snakemake.params.evaluated,
        fingerprint=snakemake.params.fingerprint,
    )
