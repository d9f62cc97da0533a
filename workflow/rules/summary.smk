rule summary:
    """One row per backbone, variant and split, every number labelled with its protocol (a
    split without ground truth says so); the images every split left out
    (`on_bad_image: skip`) gathered in skipped.csv."""
    input:
        get_summary_inputs,
        skipped=get_skipped_lists,
    output:
        report(
            paths.SUMMARY,
            caption="../report/summary.rst",
            category="1. Summary tables",
            subcategory="{dataset}",
            labels={"table": "summary.csv"},
        ),
        skipped=paths.SKIPPED,
    params:
        results=lambda wildcards: dataset_results(wildcards.dataset, labelled_only=False),
        labelled=lambda wildcards: labelled_splits(wildcards.dataset),
        splits=lambda wildcards: get_dataset(wildcards).splits,
        threshold_split=lambda wildcards: get_dataset(wildcards).threshold_split,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.SUMMARY),
    benchmark:
        paths.benchmark_of(paths.SUMMARY)
    script:
        "../scripts/summary.py"


rule tables:
    """The paper-style table across every configured experiment: rows backbone x variant,
    columns dataset x metric, on each dataset's headline split."""
    input:
        get_all_summaries,
    output:
        csv=report(
            paths.TABLES_CSV,
            caption="../report/tables.rst",
            category="1. Summary tables",
            subcategory="all datasets",
            labels={"table": "paper-style table"},
        ),
        markdown=paths.TABLES_MARKDOWN,
    conda:
        "../envs/rpsloc.yaml"
    log:
        paths.log_of(paths.TABLES_CSV),
    benchmark:
        paths.benchmark_of(paths.TABLES_CSV)
    script:
        "../scripts/summary.py"
