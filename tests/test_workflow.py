"""The Snakemake workflow as users run it: in a fresh directory, resumable, incremental."""

import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import NUMBERS_ONLY_FILES, report_config, run_snakemake, tiny_config

from rpsloc import paths
from rpsloc.paths import result_files

pytestmark = pytest.mark.workflow


def planned_jobs(result) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table."""
    table = result.stdout.split("Job stats:")[-1]
    return {
        rule: int(count)
        for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.M)
        if rule != "total"
    }


#: What the sharded run evaluates: the method's global, class-wise, subsampled and transferred
#: w* and a baseline on the raw features, each with its own path through the rules' inputs.
#: The other baselines take the caam path (covered in-process by test_end_to_end_accuracy).
SHARDED_VARIANTS = ["rps", "rps_classwise_gt", "rps-r0.5", "rps-from-base", "caam"]


def sharded_config(**dataset_overrides) -> dict:
    """`tiny_config` with both backbones and `SHARDED_VARIANTS`, evaluated on its test split
    alone (its threshold chosen there): the val-to-test threshold is the report run's."""
    overrides = {"variants": SHARDED_VARIANTS, "eval_splits": ["test"], **dataset_overrides}
    config = tiny_config(**overrides)
    del config["datasets"]["tiny"]["threshold_split"]
    return config


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sharded")
    run_snakemake(workdir, sharded_config(), "tiny")
    return workdir


# The unsharded comparison run needs only the variants whose maps come from w* and from the
# raw features; every other variant is a function of the same cached features. Shards change
# the batches a backbone sees, which matters to a real network: the random ResNet-50.
UNSHARDED_VARIANTS = ["rps", "rps_classwise_gt", "caam"]
UNSHARDED_BACKBONE = "resnet50-random"


@pytest.fixture(scope="module")
def unsharded(tmp_path_factory):
    """The metrics of `UNSHARDED_VARIANTS` (and the maps and w* behind them) of the ResNet-50
    from one shard per split; no boxes, figures or explanations, which the comparison does not
    read."""
    workdir = tmp_path_factory.mktemp("unsharded")
    config = sharded_config(variants=UNSHARDED_VARIANTS, backbones=[UNSHARDED_BACKBONE])
    config["features"]["shard_size"] = 100
    tables = [
        result_files("tiny", UNSHARDED_BACKBONE, variant, "test").table
        for variant in UNSHARDED_VARIANTS
    ]
    run_snakemake(workdir, config, *map(str, tables))
    return workdir


def test_the_dataset_target_writes_a_summary_row_per_backbone_variant_and_split(sharded):
    summary = pd.read_csv(sharded / paths.SUMMARY.format(dataset="tiny"))
    assert len(summary) == 2 * len(SHARDED_VARIANTS)
    assert set(summary["variant"]) == set(SHARDED_VARIANTS)
    assert (summary["weights"] == "random").all()
    assert (
        summary[["max_box_acc_v2", "max_box_acc_v1", "authors_box_acc_mean", "pxap"]]
        .notna()
        .all()
        .all()
    )


def test_the_fixture_backbone_localizes_through_the_workflow(sharded):
    summary = pd.read_csv(sharded / paths.SUMMARY.format(dataset="tiny"))
    method = summary[(summary.backbone == "fixture") & (summary.variant == "rps")]
    assert (method["max_box_acc_v2"] >= 90).all()


def test_figures_logs_and_benchmarks_are_written(sharded):
    for figure in ("box_accuracy", "overlays"):
        assert (sharded / paths.figure(figure).format(dataset="tiny")).read_bytes()[
            :8
        ] == b"\x89PNG\r\n\x1a\n"
    assert (sharded / "logs/tiny/fixture/representer/global.log").exists()
    assert (sharded / "benchmarks/tiny/fixture/features/train/shard-2.tsv").exists()


def test_the_features_jobs_of_a_run_share_warm_processes(sharded):
    logs = sorted((sharded / "logs/tiny").glob("*/features/*/shard-*.log"))
    served = [
        re.search(r"in the warm process (\d+) \(its job (\d+)\)", log.read_text()) for log in logs
    ]
    assert len(logs) >= 4
    assert all(served), [str(log) for log, found in zip(logs, served, strict=True) if not found]
    assert len({found[1] for found in served}) < len(logs)  # some process served several jobs


def test_a_second_run_has_nothing_to_do(sharded):
    result = run_snakemake(sharded, sharded_config(), "tiny", "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_an_evaluation_setting_reruns_only_evaluation(sharded):
    config = sharded_config()
    config["evaluation"]["cam_curve_interval"] = 0.02
    jobs = planned_jobs(run_snakemake(sharded, config, "tiny", "--dry-run"))
    assert jobs.get("metrics") == 2 * len(SHARDED_VARIANTS) and jobs.get("summary") == 1
    assert not {"synthetic", "manifest", "features", "representer", "maps"} & set(jobs)


def test_changing_the_output_stride_reruns_features_but_not_the_dataset(sharded):
    config = sharded_config(output_stride=32)
    jobs = planned_jobs(run_snakemake(sharded, config, "tiny", "--dry-run"))
    assert "features" in jobs and "representer" in jobs
    assert not {"synthetic", "manifest"} & set(jobs)


def test_a_misspelt_config_key_is_an_error_that_names_it(tmp_path):
    config = tiny_config()
    config["datasets"]["tiny"]["outptu_stride"] = 16
    result = run_snakemake(tmp_path, config, "tiny", "--dry-run", check=False)
    assert result.returncode != 0
    assert "outptu_stride" in result.stdout + result.stderr


def test_a_wrong_type_in_the_config_is_an_error_that_names_the_key(tmp_path):
    config = tiny_config()
    config["features"]["shard_size"] = "many"
    result = run_snakemake(tmp_path, config, "tiny", "--dry-run", check=False)
    assert result.returncode != 0
    assert "shard_size" in result.stdout + result.stderr


def test_explanations_and_the_selection_curve_are_written(sharded):
    ranking = pd.read_csv(
        sharded / paths.TRAINING_RANKING.format(dataset="tiny", backbone="fixture")
    )
    assert len(ranking) == 10
    curve = pd.read_csv(
        sharded / paths.SELECTION_CURVE.format(dataset="tiny", backbone="fixture", split="test")
    )
    assert curve["m"].iloc[-1] == 10
    for figure in ("selection", "representer_values"):
        assert (sharded / paths.figure(figure).format(dataset="tiny")).stat().st_size > 0


def test_the_numbers_only_target_builds_the_summary_and_no_figure(report_run):
    written = (report_run / NUMBERS_ONLY_FILES).read_text().split()
    assert paths.SUMMARY.format(dataset="tiny") in written
    summary = pd.read_csv(report_run / paths.SUMMARY.format(dataset="tiny"))
    assert set(summary["variant"]) == {"rps", "caam"}
    figures = Path(paths.figure("box_accuracy").format(dataset="tiny")).parent.as_posix()
    assert not [path for path in written if path.startswith(figures)]
    curve = paths.SELECTION_CURVE.format(dataset="tiny", backbone="fixture", split="test")
    assert curve not in written


def test_a_config_without_explanations_builds_no_selection_curve(tmp_path):
    config = report_config()
    config["explanations"] = {"enabled": False}
    manifests = [paths.MANIFEST.format(dataset="tiny", split=s) for s in ("train", "val", "test")]
    run_snakemake(tmp_path, config, *manifests)  # the dataset target's inputs depend on them
    jobs = planned_jobs(run_snakemake(tmp_path, config, "tiny", "--dry-run"))
    assert "summary" in jobs and "box_accuracy_figure" in jobs
    explaining = {"selection_curve", "test_explanations", "training_ranking", "selection_figure"}
    assert not explaining & set(jobs)


def test_transfer_uses_the_base_datasets_predictor(sharded):
    with h5py.File(
        sharded / result_files("tiny", "fixture", "rps-from-base", "test").maps
    ) as handle:
        assert handle.attrs["representer"] == paths.REPRESENTER.format(
            dataset="base", backbone="fixture", selection="global"
        )


def test_the_paper_table_spans_every_experiment(sharded):
    run_snakemake(sharded, sharded_config(), paths.TABLES_CSV)
    table = pd.read_csv(sharded / paths.TABLES_CSV)
    assert len(table) == 2 * len(SHARDED_VARIANTS)
    assert "tiny MaxBoxAccV2" in table.columns
    assert (sharded / paths.TABLES_MARKDOWN).read_text().startswith("| backbone")


def test_sharded_and_unsharded_runs_give_identical_maps_metrics_and_foreground_predictors(
    sharded, unsharded
):
    results = unsharded / "results/tiny"
    tables = sorted(path.relative_to(unsharded) for path in results.glob("*/*/metrics/*.csv"))
    maps = sorted(path.relative_to(unsharded) for path in results.glob("*/*/maps/*.h5"))
    predictors = sorted(path.relative_to(unsharded) for path in results.glob("*/representer/*.h5"))
    assert len(maps) == len(UNSHARDED_VARIANTS)
    assert len(tables) == 3 * len(maps)  # per split: BoxAcc table, per-image IoUs, PR curve
    assert len(predictors) == 2  # global and class-wise
    for table in tables:
        assert (sharded / table).read_bytes() == (unsharded / table).read_bytes(), table
    for files, dataset in ((maps, "maps"), (predictors, "foreground_predictors")):
        for path in files:
            with h5py.File(sharded / path) as a, h5py.File(unsharded / path) as b:
                np.testing.assert_array_equal(a[dataset][()], b[dataset][()], err_msg=str(path))


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """A small run of a random DINOv2 ViT-S/14 with registers, so the ViT path runs end to end
    (a 112-pixel crop: an 8 x 8 patch grid, the 518-pixel position table interpolated)."""
    workdir = tmp_path_factory.mktemp("untrained")
    config = tiny_config(backbones=["vit"], variants=["rps"], eval_splits=["test"])
    del config["datasets"]["tiny"]["threshold_split"]
    del config["datasets"]["base"]
    config["backbones"] = {"vit": {"arch": "dinov2_vits14_reg", "weights": "random", "seed": 0}}
    run_snakemake(workdir, config, paths.SUMMARY.format(dataset="tiny"))
    return workdir


def test_a_vit_localizes_through_the_workflow_on_its_patch_grid(untrained):
    shard = paths.FEATURE_SHARD.format(dataset="tiny", backbone="vit", split="test", shard=0)
    with h5py.File(untrained / shard) as handle:
        attrs = dict(handle.attrs)
    assert (attrs["feature_dim"], attrs["output_stride"]) == (384, 14)
    assert (attrs["feature_height"], attrs["feature_width"]) == (8, 8)
    assert attrs["backbone_arch"] == "dinov2_vits14_reg"
    summary = pd.read_csv(untrained / paths.SUMMARY.format(dataset="tiny"))
    assert (summary.set_index("backbone")["weights"] == "random").all()
    assert summary.loc[summary.backbone == "vit", "max_box_acc_v2"].notna().all()
