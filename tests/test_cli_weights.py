"""Checking checkpoints before a long run (METHOD.md section 4): `rpsloc weights check` exits
non-zero on any mismatch, and the workflow stops before building any job when a configured
checkpoint file is missing, naming the file, its config key and who publishes the format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import resolved, run_snakemake, tiny_config

from rpsloc.backbones.resnet import resnet50
from rpsloc.cli import main
from rpsloc.errors import CheckpointError
from rpsloc.settings import require_checkpoint_files


@pytest.fixture(scope="module")
def moco_checkpoint(tmp_path_factory) -> Path:
    """A MoCo v2 checkpoint as facebookresearch/moco saves it (query encoder, 128-d head)."""
    state = {f"module.encoder_q.{k}": v for k, v in resnet50().state_dict().items()}
    state["module.encoder_q.fc.weight"] = torch.zeros(128, 2048)
    path = tmp_path_factory.mktemp("weights") / "moco_v2_800ep_pretrain.pth.tar"
    torch.save({"epoch": 800, "arch": "resnet50", "state_dict": state}, path)
    return path


def test_weights_check_prints_the_report_and_exits_0_when_it_fits(moco_checkpoint, capsys):
    code = main(
        ["weights", "check", "--backbone", "resnet50", "--checkpoint", str(moco_checkpoint)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "format moco_v2" in out and "318 backbone tensors loaded" in out


def test_weights_check_exits_2_when_the_checkpoint_is_for_another_arch(moco_checkpoint, capsys):
    code = main(["weights", "check", "--backbone", "vgg16", "--checkpoint", str(moco_checkpoint)])
    assert code == 2
    assert "does not fit arch 'vgg16'" in capsys.readouterr().err


def test_weights_check_exits_2_when_a_layer_is_missing(moco_checkpoint, tmp_path, capsys):
    checkpoint = torch.load(moco_checkpoint, weights_only=True)
    del checkpoint["state_dict"]["module.encoder_q.layer4.2.conv3.weight"]
    path = tmp_path / "damaged.pth.tar"
    torch.save(checkpoint, path)
    arguments = ["--backbone", "resnet50", "--checkpoint", str(path), "--format", "moco_v2"]
    code = main(["weights", "check", *arguments])
    assert code == 2
    assert "1 missing: module.encoder_q.layer4.2.conv3.weight" in capsys.readouterr().err


def test_weights_check_lists_every_ignored_entry_with_its_size(moco_checkpoint, capsys):
    main(["weights", "check", "--backbone", "resnet50", "--checkpoint", str(moco_checkpoint)])
    out = capsys.readouterr().out
    assert "1 checkpoint entries ignored" in out
    assert "module.encoder_q.fc.weight: tensor [128, 2048] float32, 1.0 MB (a head)" in out
    assert "not read (outside the container): epoch (int), arch (str)" in out


def test_weights_check_exits_2_for_a_checkpoint_over_the_size_limit(moco_checkpoint, capsys):
    arguments = ["--backbone", "resnet50", "--checkpoint", str(moco_checkpoint)]
    code = main(["weights", "check", *arguments, "--max-size-gb", "0.05"])
    assert code == 2
    assert "more than the limit of 50.0 MB, and was not loaded" in capsys.readouterr().err


def test_weights_check_exits_2_for_a_nan_weight_naming_the_tensor(
    moco_checkpoint, tmp_path, capsys
):
    checkpoint = torch.load(moco_checkpoint, weights_only=True)
    checkpoint["state_dict"]["module.encoder_q.bn1.running_var"][3] = float("nan")
    path = tmp_path / "diverged.pth.tar"
    torch.save(checkpoint, path)
    code = main(["weights", "check", "--backbone", "resnet50", "--checkpoint", str(path)])
    assert code == 2
    assert "tensor module.encoder_q.bn1.running_var holds 1 NaN" in capsys.readouterr().err


def test_weights_check_exits_2_for_random_bytes_naming_them_corrupt(tmp_path, capsys):
    path = tmp_path / "random.pth"
    path.write_bytes(bytes(range(1, 256)) * 4)
    code = main(["weights", "check", "--backbone", "resnet50", "--checkpoint", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "is not a PyTorch checkpoint" in err and "arbitrary code" not in err


def test_weights_check_command_exits_non_zero_for_a_missing_file(tmp_path):
    absent = tmp_path / "absent.pth"
    command = [sys.executable, "-m", "rpsloc.cli", "weights", "check", "--backbone", "resnet50"]
    result = subprocess.run(
        [*command, "--checkpoint", str(absent), "--format", "simsiam"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert f"checkpoint file {absent} does not exist" in result.stderr
    assert "facebookresearch/simsiam" in result.stderr


@pytest.mark.workflow
def test_the_workflow_stops_before_any_job_when_a_backbone_checkpoint_is_missing(tmp_path):
    absent = tmp_path / "checkpoints" / "moco_v2_800ep_pretrain.pth.tar"
    config = tiny_config(backbones=["mocov2"], variants=["rps"], eval_splits=["val"])
    config["datasets"] = {"tiny": config["datasets"]["tiny"]}
    config["backbones"] = {
        "mocov2": {"arch": "resnet50", "weights": str(absent), "checkpoint_format": "moco_v2"}
    }
    result = run_snakemake(tmp_path, config, "tiny", check=False)
    assert result.returncode != 0
    assert f"checkpoint file {absent} does not exist" in result.stderr
    assert "backbones.mocov2.weights" in result.stderr
    assert "facebookresearch/moco" in result.stderr
    assert not (tmp_path / "results").exists()


def one_backbone_config(**backbone) -> dict:
    """The tiny workflow configuration localized with one backbone `b`."""
    config = tiny_config(backbones=["b"], variants=["rps"])
    del config["datasets"]["base"]
    config["backbones"] = {"b": {"arch": "resnet_small", **backbone}}
    return config


@pytest.mark.parametrize("weights", ["random", "none", "pretrain"])
def test_random_none_and_pretrain_weights_need_no_checkpoint_file(weights):
    block = {"pretrain": {"dataset": "tiny"}} if weights == "pretrain" else {}
    require_checkpoint_files(resolved(one_backbone_config(weights=weights, **block)))


def test_a_weights_path_must_name_an_existing_file(tmp_path):
    absent = tmp_path / "none.pth"
    settings = resolved(one_backbone_config(weights=str(absent)))
    with pytest.raises(CheckpointError, match=f"checkpoint file {absent} does not exist"):
        require_checkpoint_files(settings)
