"""Checkpoint formats in the wild, strict loading and safe unpickling (METHOD.md section 4).

Each format test writes a checkpoint the way its project publishes it (container key, key
prefix, head, optimizer state, epoch, argparse.Namespace) and checks that exactly the backbone
tensors come back.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rpsloc.backbones.build import build_backbone
from rpsloc.backbones.checkpoints import check_checkpoint, load_checkpoint_state, read_checkpoint
from rpsloc.backbones.resnet import resnet50
from rpsloc.errors import CheckpointError, InputError

Tensors = dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def source() -> Tensors:
    """A seeded ResNet-50 state dict with non-trivial BatchNorm statistics."""
    torch.manual_seed(123)
    state = resnet50().state_dict()
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif value.ndim == 1:  # BatchNorm weight, bias and running statistics
            state[key] = torch.rand_like(value) + 0.5
    return state


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


def optimizer_state() -> dict[str, object]:
    momentum = {0: {"momentum_buffer": torch.zeros(4)}}
    groups = [{"lr": 0.03, "momentum": 0.9, "weight_decay": 1e-4, "params": [0, 1]}]
    return {"state": momentum, "param_groups": groups}


def prefixed(state: Tensors, prefix: str) -> Tensors:
    return {prefix + k: v for k, v in state.items()}


def projector(prefix: str, bn: bool = False) -> Tensors:
    """A small MLP head under `prefix` (shapes of the real heads do not matter: heads are
    ignored)."""
    head = {f"{prefix}0.weight": torch.randn(16, 2048), f"{prefix}0.bias": torch.randn(16)}
    if bn:
        head |= {f"{prefix}1.{n}": torch.rand(16) for n in ("weight", "bias", "running_mean")}
        head[f"{prefix}1.running_var"] = torch.rand(16)
        head[f"{prefix}1.num_batches_tracked"] = torch.tensor(5)
    head |= {f"{prefix}2.weight": torch.randn(8, 16), f"{prefix}2.bias": torch.randn(8)}
    return head


def shifted(state: Tensors) -> Tensors:
    return {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}


def published(name: str, state: Tensors) -> dict[str, object]:
    """The checkpoint object of each project, as its training script saves it."""
    args = argparse.Namespace(arch="resnet50", lr=0.03, batch_size=256, dist_url="tcp://x:1")
    if name == "moco_v2":  # facebookresearch/moco main_moco.py
        sd = prefixed(state, "module.encoder_q.") | projector("module.encoder_q.fc.")
        sd |= prefixed(shifted(state), "module.encoder_k.") | projector("module.encoder_k.fc.")
        sd |= {"module.queue": torch.randn(128, 32), "module.queue_ptr": torch.zeros(1).long()}
        return {"epoch": 200, "arch": "resnet50", "state_dict": sd, "optimizer": optimizer_state()}
    if name == "moco_v1":  # MoCo v1: a single linear fc head
        sd = prefixed(state, "module.encoder_q.") | prefixed(shifted(state), "module.encoder_k.")
        sd |= {"module.encoder_q.fc.weight": torch.randn(128, 2048)}
        sd |= {"module.encoder_q.fc.bias": torch.randn(128)}
        return {"epoch": 200, "arch": "resnet50", "state_dict": sd, "optimizer": optimizer_state()}
    if name == "densecl":  # mmcv-style checkpoint, converted backbone without head
        return {"meta": {"epoch": 200, "mmcv_version": "1.0"}, "state_dict": dict(state)}
    if name == "moco_v3":  # facebookresearch/moco-v3 main_lincls.py
        sd = prefixed(state, "module.") | {
            "module.fc.weight": torch.randn(1000, 2048),
            "module.fc.bias": torch.randn(1000),
        }
        return {
            "epoch": 90,
            "arch": "resnet50",
            "state_dict": sd,
            "best_acc1": torch.tensor(74.6),
            "optimizer": optimizer_state(),
        }
    if name == "supervised":  # torchvision: the state dict itself, with its fc
        return dict(state) | {"fc.weight": torch.randn(1000, 2048), "fc.bias": torch.randn(1000)}
    if name == "dino":  # DINO ResNet-50: fc is Identity, no counters saved
        return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if name == "simsiam":  # facebookresearch/simsiam: projector in encoder.fc, predictor apart
        sd = prefixed(state, "module.encoder.") | projector("module.encoder.fc.", bn=True)
        sd |= projector("module.predictor.", bn=True)
        return {"epoch": 100, "arch": "resnet50", "state_dict": sd, "optimizer": optimizer_state()}
    if name == "supcon":  # HobbitLong/SupContrast save_model
        sd = prefixed(state, "module.encoder.") | projector("module.head.")
        return {"opt": args, "model": sd, "optimizer": optimizer_state(), "epoch": 1000}
    if name == "ccam":
        sd = prefixed(state, "backbone.") | {"ac_head.activation_head.weight": torch.randn(1, 3072)}
        return {"state_dict": sd, "epoch": 20, "args": args}
    if name == "dawsol":
        classifier = {"fc.weight": torch.randn(200, 2048), "fc.bias": torch.randn(200)}
        return {"state_dict_extractor": dict(state), "state_dict_classifier": classifier}
    raise ValueError(name)


FORMATS = {
    "moco_v2": "moco_v2",
    "moco_v1": "moco_v2",
    "densecl": "moco_v2_converted",
    "moco_v3": "moco_v3",
    "supervised": "torchvision",
    "dino": "torchvision",
    "simsiam": "simsiam",
    "supcon": "supcon",
    "ccam": "ccam",
    "dawsol": "dawsol",
}


@pytest.fixture(scope="module")
def checkpoint(source, ckpt_dir):
    """Write (once) and return the path of a project's checkpoint."""
    paths: dict[str, Path] = {}

    def write(name: str) -> Path:
        if name not in paths:
            paths[name] = ckpt_dir / f"{name}.pth.tar"
            legacy = name in ("moco_v1", "moco_v2")  # saved by torch < 1.6: not a zip file
            torch.save(
                published(name, source), paths[name], _use_new_zipfile_serialization=not legacy
            )
        return paths[name]

    return write


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_auto_detection_loads_every_backbone_tensor_of_each_format(name, source, checkpoint):
    state, report = load_checkpoint_state(checkpoint(name), "resnet50")
    backbone = {k: v for k, v in source.items() if k in state}
    assert report.format == FORMATS[name]
    assert report.n_loaded == len(state)
    assert set(state) | set(report.defaulted_keys) == set(source)
    assert all(torch.equal(state[k], v) for k, v in backbone.items())


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_the_named_format_loads_the_same_tensors(name, source, checkpoint):
    state, report = load_checkpoint_state(checkpoint(name), "resnet50", FORMATS[name])
    assert report.format == FORMATS[name]
    assert all(torch.equal(state[k], source[k]) for k in state)


def test_moco_v2_takes_the_query_encoder_and_ignores_key_encoder_queue_and_head(checkpoint):
    _, report = load_checkpoint_state(checkpoint("moco_v2"), "resnet50")
    assert report.n_loaded == 318
    assert len(report.ignored_keys) == 318 + 4 + 4 + 2
    assert "module.encoder_q.fc.0.weight" in report.ignored_keys
    assert "module.queue" in report.ignored_keys


def test_absent_batchnorm_counters_are_reported_and_set_to_zero(checkpoint):
    config = {"arch": "resnet50", "weights": str(checkpoint("dino")), "seed": 0}
    model = build_backbone(config, 32)
    _, report = load_checkpoint_state(checkpoint("dino"), "resnet50")
    assert len(report.defaulted_keys) == 53
    assert report.n_loaded == 318 - 53
    assert model.layer1[0].bn1.num_batches_tracked.item() == 0


def test_format_aliases_name_the_same_layout(checkpoint):
    _, report = load_checkpoint_state(checkpoint("densecl"), "resnet50", "detco")
    assert report.format == "moco_v2_converted"


def test_built_backbone_holds_the_checkpoint_weights_and_its_provenance(source, checkpoint):
    path = checkpoint("moco_v2")
    config = {"arch": "resnet50", "weights": str(path), "checkpoint_format": "auto", "seed": 7}
    model = build_backbone(config, 16)
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model.provenance == {
        "arch": "resnet50",
        "weights": str(path),
        "checkpoint_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "checkpoint_format": "moco_v2",
        "seed": 7,
    }
    with torch.no_grad():
        assert tuple(model(torch.randn(1, 3, 224, 224)).shape) == (1, 2048, 14, 14)


def test_ccam_arch_loads_a_ccam_checkpoint(source, checkpoint):
    config = {"arch": "ccam", "weights": str(checkpoint("ccam")), "seed": 0}
    model = build_backbone(config, 16)
    assert torch.equal(model.layer3[5].conv3.weight, source["layer3.5.conv3.weight"])
    assert model.provenance["checkpoint_format"] == "ccam"


def test_check_checkpoint_reports_format_counts_and_hash(checkpoint):
    path = checkpoint("simsiam")
    report = check_checkpoint(path, "resnet50")
    assert (report.format, report.n_loaded) == ("simsiam", 318)
    assert report.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(report.ignored_keys) == 2 * 9  # projector and predictor (fc.1 BN has 5 entries)
    text = report.summary()
    assert "simsiam" in text and "318 backbone tensors loaded" in text and str(path) in text


def test_every_ignored_module_is_listed_with_its_count(checkpoint):
    _, report = load_checkpoint_state(checkpoint("moco_v2"), "resnet50")
    [line] = [line for line in report.summary().splitlines() if "entries ignored" in line]
    assert line.endswith(
        "module.encoder_k.* (322), module.queue (1), module.queue_ptr (1), "
        "module.encoder_q.fc.* (4)"
    )


def test_a_bare_dataparallel_resnet50_is_dataparallel_not_swav(source, tmp_path):
    # SwAV's layout without SwAV's projection head and prototypes is any DataParallel model's
    path = save(prefixed(source, "module."), tmp_path / "dataparallel.pth")
    _, report = load_checkpoint_state(path, "resnet50")
    assert report.format == "dataparallel"


def test_dino_vit_checkpoint_loads_into_the_vit(tmp_path):
    torch.manual_seed(0)
    vit = build_backbone({"arch": "vit_s16", "weights": "random", "seed": 3}, 16)
    path = tmp_path / "dino_deitsmall16_pretrain.pth"
    torch.save(vit.state_dict(), path)
    model = build_backbone({"arch": "vit_s16", "weights": str(path), "seed": 0}, 16)
    assert model.provenance["checkpoint_format"] == "torchvision"
    assert all(torch.equal(v, vit.state_dict()[k]) for k, v in model.state_dict().items())


# ---------------------------------------------------------------- refusals


def save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def test_wrong_prefix_for_the_named_format_is_refused(checkpoint):
    with pytest.raises(CheckpointError, match=r"not in format simsiam.*'module\.encoder\.'"):
        load_checkpoint_state(checkpoint("moco_v2"), "resnet50", "simsiam")


def test_unknown_prefix_fits_no_format(source, tmp_path):
    path = save({"state_dict": prefixed(source, "module.net.")}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="does not fit arch 'resnet50' in any format"):
        load_checkpoint_state(path, "resnet50")


def test_missing_layer_is_refused_naming_file_format_counts_and_keys(source, tmp_path):
    state = {k: v for k, v in source.items() if not k.startswith("layer4.2.")}
    path = save(state, tmp_path / "no_layer4_2.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_state(path, "resnet50", "torchvision")
    message = str(err.value)
    assert str(path) in message and "format torchvision" in message
    assert "300 of 318 backbone tensors match; 15 missing" in message
    assert "layer4.2.conv1.weight" in message


def test_wrong_shape_is_refused_with_expected_and_found_shapes(source, tmp_path):
    state = dict(source) | {"conv1.weight": torch.zeros(64, 3, 3, 3)}
    path = save(state, tmp_path / "cifar_stem.pth")
    with pytest.raises(CheckpointError, match=r"1 with the wrong shape: conv1\.weight "):
        load_checkpoint_state(path, "resnet50", "torchvision")
    with pytest.raises(CheckpointError, match=r"expected \[64, 3, 7, 7\], found \[64, 3, 3, 3\]"):
        load_checkpoint_state(path, "resnet50")


def test_extra_non_head_keys_are_refused(source, tmp_path):
    path = save(dict(source) | {"layer5.0.weight": torch.zeros(3)}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"1 unexpected: layer5\.0\.weight"):
        load_checkpoint_state(path, "resnet50", "torchvision")


def test_another_architectures_checkpoint_is_refused(tmp_path):
    vgg = build_backbone({"arch": "vgg16", "weights": "random", "seed": 0}, 8)
    path = save(vgg.state_dict(), tmp_path / "vgg16.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_state(path, "resnet50")
    assert "0 of 318 backbone tensors match; 265 missing" in str(err.value)
    assert "26 unexpected: features.0.weight" in str(err.value)


def test_resnet_checkpoint_is_refused_by_the_vit(checkpoint):
    with pytest.raises(CheckpointError, match="0 of 150 backbone tensors match"):
        load_checkpoint_state(checkpoint("supervised"), "vit_s16", "torchvision")


class CreatesMarker:
    """Unpickling this would run `open(marker, "w")`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_that_needs_code_is_refused_and_never_runs(source, tmp_path):
    marker = tmp_path / "pwned"
    obj = {"state_dict": dict(source), "hook": CreatesMarker(marker)}
    path = save(obj, tmp_path / "malicious.pth")
    with pytest.raises(CheckpointError, match="needs arbitrary code.*was not loaded"):
        load_checkpoint_state(path, "resnet50")
    assert not marker.exists()


def test_legacy_pickle_that_needs_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "malicious_legacy.pth"
    torch.save({"x": CreatesMarker(marker)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="needs arbitrary code"):
        check_checkpoint(path, "resnet50")
    with pytest.raises(CheckpointError, match="needs arbitrary code"):
        build_backbone({"arch": "resnet50", "weights": str(path), "seed": 0}, 32)
    assert not marker.exists()


def test_a_pickle_that_needs_code_names_the_global_it_asks_for(tmp_path):
    path = save({"hook": CreatesMarker(tmp_path / "pwned")}, tmp_path / "malicious.pth")
    with pytest.raises(CheckpointError, match=r"needs arbitrary code .*asks for io\.open"):
        read_checkpoint(path, "resnet50")


def test_random_bytes_are_not_a_pytorch_checkpoint_rather_than_unsafe(tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(bytes(range(1, 256)) * 40)
    with pytest.raises(CheckpointError, match=r"corrupt.pth is not a PyTorch checkpoint") as err:
        read_checkpoint(path, "resnet50")
    assert "arbitrary code" not in str(err.value)


def test_a_downloaded_error_page_is_named_as_such(tmp_path):
    path = tmp_path / "moco.pth.tar"
    path.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    with pytest.raises(CheckpointError, match=r"looks like HTML .*error page"):
        read_checkpoint(path, "resnet50")


def test_a_truncated_checkpoint_is_reported_as_truncated(checkpoint, tmp_path):
    data = checkpoint("simsiam").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut.pth is truncated or damaged.* Copy it again"):
        read_checkpoint(path, "resnet50")


def test_a_truncated_legacy_checkpoint_is_damaged_rather_than_unsafe(checkpoint, tmp_path):
    data = checkpoint("moco_v2").read_bytes()  # the legacy format, a pickle and raw storages
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(data[:-1000])
    with pytest.raises(CheckpointError, match=r"cut.pth.tar is damaged: torch.load could not"):
        read_checkpoint(path, "resnet50")


def test_an_empty_file_is_reported_as_empty(tmp_path):
    (tmp_path / "empty.pth").touch()
    with pytest.raises(CheckpointError, match=r"empty.pth is empty \(0 bytes\)"):
        read_checkpoint(tmp_path / "empty.pth", "resnet50")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_weight_is_refused_naming_the_tensor(source, tmp_path, value):
    state = dict(source) | {"layer2.1.conv2.weight": source["layer2.1.conv2.weight"].clone()}
    state["layer2.1.conv2.weight"][0, 0, 0, 0] = value
    path = save({"state_dict": prefixed(state, "module.encoder.")}, tmp_path / "diverged.pth")
    nan, inf = (1, 0) if value != value else (0, 1)
    message = rf"backbone tensor module.encoder.layer2.1.conv2.weight holds {nan} NaN and {inf} inf"
    with pytest.raises(CheckpointError, match=message):
        check_checkpoint(path, "resnet50")


def test_a_checkpoint_over_the_size_limit_is_refused_before_it_is_unpickled(
    checkpoint, monkeypatch
):
    def unpickled(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", unpickled)
    with pytest.raises(CheckpointError, match=r"holds 94.5 MB uncompressed .* limit of 50.0 MB"):
        load_checkpoint_state(checkpoint("simsiam"), "resnet50", max_bytes=50 * 10**6)


def test_the_size_limit_counts_what_a_compressed_zip_entry_inflates_to(tmp_path):
    path = tmp_path / "inflates.pth"
    torch.save({"fc.weight": torch.zeros(1000, 1000)}, path)  # 4 MB of zeros
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info.filename, data)
    assert path.stat().st_size < 100_000
    with pytest.raises(CheckpointError, match=r"holds 4.0 MB uncompressed \(\d+.\d kB on disk\)"):
        read_checkpoint(path, "resnet50", max_bytes=10**6)


def test_the_backbone_config_sets_the_size_limit(checkpoint):
    config = {"arch": "resnet50", "weights": str(checkpoint("simsiam")), "seed": 0}
    with pytest.raises(CheckpointError, match=r"more than the limit of 1.0 MB"):
        build_backbone({**config, "max_checkpoint_bytes": 10**6}, 32)


def test_the_report_lists_every_ignored_entry_with_its_shape_and_size(checkpoint):
    _, report = load_checkpoint_state(checkpoint("moco_v2"), "resnet50")
    text = report.summary()
    assert "module.queue: tensor [128, 32] float32, 16.4 kB (a head)" not in text
    assert "module.queue: tensor [128, 32] float32, 16.4 kB (outside the prefix" in text
    assert "module.encoder_q.fc.0.weight: tensor [16, 2048] float32, 131.1 kB (a head)" in text
    assert all(f"    {key}: " in text for key in report.ignored_keys)
    assert (
        "not read (outside the container): epoch (int), arch (str), optimizer (dict of 2)" in text
    )


def test_missing_file_says_which_file_and_who_publishes_the_format(tmp_path):
    path = tmp_path / "moco_v2_800ep_pretrain.pth.tar"
    with pytest.raises(CheckpointError) as err:
        config = {"arch": "resnet50", "weights": str(path), "checkpoint_format": "moco_v2"}
        build_backbone(config, 32)
    assert f"checkpoint file {path} does not exist" in str(err.value)
    assert "facebookresearch/moco" in str(err.value)


def test_missing_file_with_auto_format_lists_every_publisher(tmp_path):
    with pytest.raises(CheckpointError, match="simsiam: facebookresearch/simsiam"):
        check_checkpoint(tmp_path / "absent.pth", "resnet50")


def test_ambiguous_auto_detection_lists_candidates_and_asks_for_the_format(source, tmp_path):
    obj = {"state_dict": dict(source), "state_dict_extractor": dict(source)}
    path = save(obj, tmp_path / "two.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_state(path, "resnet50")
    assert "['moco_v2_converted', 'dawsol']" in str(err.value)
    assert "checkpoint_format" in str(err.value)
    _, report = load_checkpoint_state(path, "resnet50", "dawsol")
    assert report.format == "dawsol"


def test_unknown_format_name_is_a_configuration_error(checkpoint):
    with pytest.raises(InputError, match="unknown checkpoint_format 'mocov2'"):
        load_checkpoint_state(checkpoint("moco_v2"), "resnet50", "mocov2")


# ---------------------------------------------------------------- safetensors


def test_a_safetensors_file_is_read_without_unpickling(source, tmp_path, monkeypatch):
    path = tmp_path / "resnet50.safetensors"
    save_file(source, path)

    def refuse(*args, **kwargs):
        raise AssertionError("a safetensors file was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    state, report = load_checkpoint_state(path, "resnet50")
    assert (report.format, report.reader, report.n_loaded) == ("torchvision", "safetensors", 318)
    assert all(torch.equal(state[k], v) for k, v in source.items())


def test_a_safetensors_file_is_recognised_by_its_header_whatever_its_name(source, tmp_path):
    path = tmp_path / "resnet50.pth"
    save_file(source, path)
    _, report = load_checkpoint_state(path, "resnet50")
    assert report.reader == "safetensors"


def test_a_damaged_safetensors_file_is_refused_naming_it(source, tmp_path):
    path = tmp_path / "cut.safetensors"
    save_file(source, path)
    path.write_bytes(path.read_bytes()[:4096])
    with pytest.raises(
        CheckpointError, match=f"checkpoint {path} could not be read by safetensors"
    ):
        load_checkpoint_state(path, "resnet50")
