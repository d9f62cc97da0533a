from rpsloc.explanations import write_test_explanations
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    write_test_explanations(
        representer=snakemake.input.representer,
        eval_shards=list(snakemake.input.shards),
        out=snakemake.output[0],
        top_k=snakemake.params.top_k,
        provenance={"split": snakemake.wildcards.split},
    )
