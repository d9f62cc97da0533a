"""Configuration files are read strictly (rpsloc.configfile): a key given twice, a YAML syntax
error or a top level that is not a mapping is an error naming the file (and the lines); the
workflow reads the user's --configfile instead of the demo default, never merged with it."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from conftest import REPO, SNAKEMAKE, tiny_config

from rpsloc.configfile import read_config
from rpsloc.errors import InputError

DUPLICATED_VARIANTS = """\
datasets:
  tiny:
    variants: [rps]
    adapter: synthetic
    variants: [caam]
"""


def test_a_key_given_twice_is_an_error_naming_the_file_and_both_lines(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(DUPLICATED_VARIANTS)
    with pytest.raises(
        InputError, match=rf"{path}, line 5: key 'variants' is given twice .*line 3"
    ):
        read_config(path)


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("datasets:\n  tiny: {adapter: synthetic\nbackbones: {}\n")
    with pytest.raises(InputError, match=rf'(?s){path}: not valid YAML: .*"{path}", line 3'):
        read_config(path)


def test_a_top_level_list_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("- datasets\n")
    with pytest.raises(InputError, match=rf"{path}: expected a mapping .* found list"):
        read_config(path)


def test_keys_merged_from_an_anchor_may_be_overridden(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("common: &common {seed: 0, arch: resnet50}\nb:\n  <<: *common\n  seed: 1\n")
    assert read_config(path)["b"] == {"seed": 1, "arch": "resnet50"}


def test_the_demo_config_reads_strictly():
    assert set(read_config(REPO / "config" / "config.yaml")) >= {"datasets", "backbones"}


# ----------------------------------------------------------------------------- the workflow


def dry_run(workdir, *arguments: str) -> subprocess.CompletedProcess:
    """A dry run of the repository's workflow in `workdir`, with the given config options."""
    command = [str(SNAKEMAKE), "--dry-run", "--snakefile", str(REPO / "workflow" / "Snakefile")]
    command += ["--directory", str(workdir), "--cores", "1", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def one_dataset(name: str) -> dict:
    """The tiny configuration with one dataset, called `name`."""
    config = tiny_config(backbones=["fixture"], variants=["caam"], eval_splits=["test"])
    dataset = config["datasets"]["tiny"]
    del dataset["threshold_split"]
    config["datasets"] = {name: dataset}
    return config


@pytest.mark.workflow
def test_a_users_configfile_replaces_the_default_config(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(one_dataset("demo")))
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(one_dataset("mine")))
    result = dry_run(tmp_path, "--configfile", str(tmp_path / "mine.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "results/mine/manifest/" in result.stdout
    assert "results/demo" not in result.stdout


@pytest.mark.workflow
def test_without_a_configfile_the_default_config_applies(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(one_dataset("demo")))
    result = dry_run(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "results/demo/manifest/" in result.stdout


@pytest.mark.workflow
def test_a_key_given_twice_in_the_configfile_stops_the_workflow_naming_the_line(tmp_path):
    text = yaml.safe_dump(one_dataset("mine"))
    path = tmp_path / "mine.yaml"
    path.write_text(text + "features: {device: cpu}\n")  # `features` is already in `text`
    result = dry_run(tmp_path, "--configfile", str(path))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "key 'features' is given twice" in output
    assert f"{path}, line {text.count(chr(10)) + 1}" in output
    assert not (tmp_path / "results").exists()
