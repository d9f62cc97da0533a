from pathlib import Path

from rpsloc.logging import to_log
from rpsloc.synthetic import DEFAULT_STYLE, generate_synthetic_dataset

with to_log(snakemake.log[0]):
    settings = snakemake.params.synthetic
    generate_synthetic_dataset(
        root=Path(snakemake.output[0]),
        splits=settings["splits"],
        n_classes=settings["classes"],
        seed=settings["seed"],
        max_side=settings["max_side"],
        style=settings.get("style", DEFAULT_STYLE),
    )
