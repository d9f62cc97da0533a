from rpsloc.explanations import write_training_ranking
from rpsloc.logging import to_log

with to_log(snakemake.log[0]):
    write_training_ranking(snakemake.input[0], snakemake.output[0])
