"""Shared test helpers: where the repository and ../shared live, how to run Snakemake, and the
tests' backbone plugin on the path."""

import copy
import hashlib
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import validate

from rpsloc import paths
from rpsloc.backbones import architecture
from rpsloc.backbones.build import build_backbone
from rpsloc.settings import Settings, resolve_settings

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
#: The tests' backbone plugin (the colourfulness fixture, found through its entry point): on
#: sys.path for this process, on PYTHONPATH for the Snakemake runs and scripts it starts.
PLUGINS = REPO / "tests" / "plugins"
sys.path.insert(0, str(PLUGINS))
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(PLUGINS), os.environ.get("PYTHONPATH")])
)


#: The session fixtures that run the workflow. `make test` runs the suite on two pytest-xdist
#: workers (pyproject.toml), each taking one group of test modules at a time: a module alone,
#: or the modules that name one of these runs (`module_groups`). Every module fixture and
#: every shared run is then made once, on one worker.
SHARED_RUNS = ("reference_run", "offline_run", "report_run", "folder_run")


def module_groups(folder: Path) -> dict[str, str]:
    """Each test module of `folder` (by file name) and its group: modules whose source names
    the same run of `SHARED_RUNS` are in one group. A module using a run without naming it
    would only make the run a second time, on the other worker."""
    group_of: dict[str, str] = {}

    def group(name: str) -> str:
        while group_of.get(name, name) != name:
            name = group_of[name]
        return name

    modules = sorted(path.name for path in folder.glob("test_*.py"))
    for module in modules:
        source = (folder / module).read_text()
        for run in SHARED_RUNS:
            if re.search(rf"\b{run}\b", source):
                group_of[group(module)] = group(run)
    return {module: group(module) for module in modules}


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """In place of xdist's default (`--dist load`, test by test), schedule the groups of
    `module_groups` whole, largest (most tests) first; another `--dist` is left to xdist."""
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") != "load":
        return None

    groups = module_groups(Path(__file__).parent)

    class SharedRunScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0].rsplit("/", 1)[-1]
            return groups.get(module, module)

    return SharedRunScheduling(config, log)


def packages_imported_by(modules: str) -> set[str]:
    """The top-level packages a fresh Python process holds after `import <modules>`: what a
    job importing them pays for at its start."""
    code = "import sys, " + modules + "; print(' '.join({m.split('.')[0] for m in sys.modules}))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def peak_traced_bytes(compute) -> int:
    """The most memory `compute()` held at once (tracemalloc, which sees numpy's arrays), run
    a first time untraced so that the imports and caches it starts are not counted."""
    compute()
    tracemalloc.start()
    try:
        compute()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="session")
def wsol_metadata() -> Path:
    """The real WSOL benchmark metadata, read in place from ../shared (never copied)."""
    folder = SHARED / "wsol-metadata"
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing: the tests read the shared benchmark metadata there")
    return folder


def validated(config: dict) -> dict:
    """A copy of `config` validated against the workflow's schema, its defaults filled in."""
    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return config


def resolved(config: dict) -> Settings:
    """`config` as the workflow resolves it: validated, then `resolve_settings`."""
    return resolve_settings(validated(config))


def random_config(arch: str = "resnet50", seed: int = 0) -> dict[str, object]:
    """A backbone config entry for a seeded random init of `arch`."""
    return {"arch": arch, "weights": "random", "checkpoint_format": "auto", "seed": seed}


@pytest.fixture(scope="session")
def random_resnet50s() -> dict[int, torch.nn.Module]:
    """One random ResNet-50 (seed 0) per output stride, built once for the session."""
    return {s: build_backbone(random_config(seed=0), s) for s in (32, 16, 8)}


def arch_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """The name and shape of every parameter and buffer of `arch` (built on the meta device)."""
    record = architecture(arch)
    with torch.device("meta"):
        model = record.build(record.output_strides[0])
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def state_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every tensor of a model's state dict: its name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    state = model.state_dict()
    for key in sorted(state):
        value = state[key]
        digest.update(f"{key} {value.dtype} {tuple(value.shape)}\n".encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


def tiny_config(**dataset_overrides) -> dict:
    """A workflow configuration small enough to run in seconds: the synthetic set, the
    colourfulness fixture backbone and a small random ResNet-50 pass, every kind of map
    variant, and a second synthetic set (one shard of training images) that serves only as the
    base of a transferred w*."""
    dataset = {
        "adapter": "synthetic",
        "synthetic": {
            "splits": {"train": 10, "val": 6, "test": 6},
            "classes": 2,
            "seed": 1,
            "max_side": 160,
        },
        "train_split": "train",
        "eval_splits": ["val", "test"],
        "threshold_split": "val",
        "image_size": 128,
        "crop_size": 112,
        "train_image_size": 112,
        "output_stride": 16,
        "backbones": ["fixture", "resnet50-random"],
        "variants": [
            "rps",
            "rps_classwise_gt",
            "rps-r0.5",
            "rps-from-base",
            "caam",
            "ddt",
            "centre_gaussian",
        ],
        **dataset_overrides,
    }
    base = {
        **dataset,
        "synthetic": {**dataset["synthetic"], "splits": {"train": 4}, "seed": 2},
        "eval_splits": [],
        "variants": [],
    }
    base.pop("threshold_split")
    return {
        "datasets": {"tiny": dataset, "base": base},
        "backbones": {
            "fixture": {"arch": "fixture-colourfulness", "weights": "random"},
            "resnet50-random": {"arch": "resnet50", "weights": "random", "seed": 0},
        },
        "features": {"shard_size": 4, "batch_size": 4, "num_workers": 0, "device": "cpu"},
        "evaluation": {
            "cam_curve_interval": 0.01,
            "iou_thresholds": [30, 50, 70],
            "overlay_images": 2,
        },
    }


#: How the tests' local runs schedule the GPU rules on CI's two cores: the default profile
#: holds a GPU for each (`resources: gpu=1`), so on a machine without one they would run one at
#: a time on two threads; the tests' backbones are tiny, so two run side by side on one thread
#: each. Every comparison of two runs compares runs made the same way.
SIDE_BY_SIDE = ("--set-threads", "features=1", "--resources", "gpu=2")


def snakemake_command(
    workdir: Path, config: dict, *arguments: str, side_by_side: bool = True
) -> list[str]:
    """The command line running the repository's workflow in `workdir`, with `config` written
    to its config file (and `SIDE_BY_SIDE`, unless asked not to)."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return [
        str(SNAKEMAKE),
        *arguments,
        *(SIDE_BY_SIDE if side_by_side else ()),
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--configfile",
        str(workdir / "config" / "config.yaml"),
    ]


def run_snakemake(
    workdir: Path,
    config: dict,
    *arguments: str,
    check: bool = True,
    env: dict | None = None,
    side_by_side: bool = True,
) -> subprocess.CompletedProcess:
    """Run the repository's workflow in `workdir` with `config` written to its config file."""
    command = snakemake_command(workdir, config, *arguments, side_by_side=side_by_side)
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return result


def reliability_config() -> dict:
    """The run the reliability tests repeat, interrupt and compare: the fixture backbone, the
    method's maps, one evaluated split, two training shards (small: these runs are repeated)."""
    config = tiny_config(backbones=["fixture"], variants=["rps"], eval_splits=["val"])
    config["datasets"] = {"tiny": config["datasets"]["tiny"]}
    config["features"]["shard_size"] = 6
    return config


#: What the reliability runs build: the summary table and the figures.
RELIABILITY_TARGETS = (
    paths.SUMMARY.format(dataset="tiny"),
    paths.figure("box_accuracy").format(dataset="tiny"),
    paths.figure("overlays").format(dataset="tiny"),
)


#: Where `reference_run` keeps what the run printed on the terminal (stdout, then stderr).
CONSOLE = "console.txt"


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Path:
    """One uninterrupted run of `reliability_config`, the reference of the determinism and
    kill-and-resume tests; its terminal output is in `CONSOLE`."""
    workdir = tmp_path_factory.mktemp("reference")
    result = run_snakemake(workdir, reliability_config(), *RELIABILITY_TARGETS)
    (workdir / CONSOLE).write_text(result.stdout + result.stderr)
    return workdir


SOCKET_GUARD = '''\
"""Loaded by every Python process of a guarded run: records that it was loaded, and refuses
and records every attempt to resolve a name or open a network connection."""
import os
import socket

_folder = os.environ["RPSLOC_SOCKET_GUARD"]
open(os.path.join(_folder, f"loaded-{os.getpid()}"), "w").close()


def _refuse(*args, **kwargs):
    with open(os.path.join(_folder, "attempts.txt"), "a") as stream:
        stream.write(f"{os.getpid()}: {args!r}\\n")
    raise OSError("network access is disabled in this run")


def _local_only(connect):
    """A Unix socket is this machine's own (the warm extraction process): not the network."""
    def guarded(self, *args, **kwargs):
        if self.family == socket.AF_UNIX:
            return connect(self, *args, **kwargs)
        return _refuse(*args, **kwargs)
    return guarded


socket.socket.connect = _local_only(socket.socket.connect)
socket.socket.connect_ex = _local_only(socket.socket.connect_ex)
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
'''


@pytest.fixture(scope="session")
def offline_run(tmp_path_factory) -> Path:
    """`reliability_config` run with a socket guard (a sitecustomize.py on PYTHONPATH, so
    Snakemake and every job inherit it); the guard's records are in `<workdir>/guard`."""
    workdir = tmp_path_factory.mktemp("offline")
    guard = workdir / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(SOCKET_GUARD)
    path = os.pathsep.join(filter(None, [str(guard), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "RPSLOC_SOCKET_GUARD": str(guard)}
    run_snakemake(workdir, reliability_config(), *RELIABILITY_TARGETS, env=env)
    return workdir


#: The figures of `report_run`'s dataset (it is explained: rps on its headline split).
REPORT_FIGURES = (
    "predictions",
    "objectness",
    "box_accuracy",
    "precision_recall",
    "overlays",
    "best_and_worst",
    "selection",
    "representer_values",
    "representer_gallery",
)


def report_config() -> dict:
    """The run the report, browser and CLI tests share: the fixture backbone, the method and
    one baseline, two evaluated splits (the last one explained)."""
    config = tiny_config(backbones=["fixture"], variants=["rps", "caam"])
    config["datasets"] = {"tiny": config["datasets"]["tiny"]}
    return config


#: The files under `results/` that `report_run`'s first step, the numbers-only target, wrote.
NUMBERS_ONLY_FILES = "numbers-only-files.txt"


@pytest.fixture(scope="session")
def report_run(tmp_path_factory) -> Path:
    """`report_config` run to its numbers-only target `tiny_numbers` (what that wrote is
    listed in `NUMBERS_ONLY_FILES`), then completely (every target), then
    `snakemake --report results/report.html`, as `make report` does."""
    workdir = tmp_path_factory.mktemp("report")
    run_snakemake(workdir, report_config(), "tiny_numbers")
    written = sorted(
        path.relative_to(workdir).as_posix()
        for path in (workdir / "results").rglob("*")
        if path.is_file()
    )
    (workdir / NUMBERS_ONLY_FILES).write_text("\n".join(written) + "\n")
    run_snakemake(workdir, report_config())
    run_snakemake(workdir, report_config(), "--report", "results/report.html")
    return workdir


def folder_config(photos: Path) -> dict:
    """Two datasets on one folder of synthetic photos (`generate_synthetic_folder`), some of
    them empty: `photos`, the images alone (the `folder` adapter: no metadata, w* from all of
    them, boxes for all of them, resized without a crop), and `partial`, the same photos with
    their bring-your-own CSV (`dataset.csv`), whose evaluated split has boxes for the object
    images only (`on_bad_image: skip`; resized and centre-cropped)."""
    common = {"backbones": ["fixture"], "variants": ["rps"], "image_size": 128}
    return {
        "datasets": {
            "photos": {
                "adapter": "folder",
                "root": str(photos),
                "train_split": "all",
                "eval_splits": ["everything"],
                **common,
            },
            "partial": {
                "adapter": "csv",
                "csv": str(photos / "dataset.csv"),
                "train_split": "train",
                "eval_splits": ["photos"],
                "on_bad_image": "skip",
                "crop_size": 112,
                **common,
            },
        },
        "backbones": {"fixture": {"arch": "fixture-colourfulness", "weights": "none"}},
        "features": {"shard_size": 8, "batch_size": 4, "num_workers": 0, "device": "cpu"},
        "evaluation": {"overlay_images": 4},
    }


#: The photos of `folder_run`: per split, how many, a quarter of them empty.
FOLDER_SPLITS = {"train": 12, "photos": 8}


@pytest.fixture(scope="session")
def folder_run(tmp_path_factory) -> Path:
    """Both datasets of `folder_config` run to the end, then the report of `photos` alone
    (`snakemake photos --report results/photos-report.html`); the photos are in `photos/`."""
    from rpsloc.synthetic import generate_synthetic_folder

    workdir = tmp_path_factory.mktemp("folder")
    generate_synthetic_folder(workdir / "photos", FOLDER_SPLITS, empty=0.25, max_side=160)
    config = folder_config(workdir / "photos")
    run_snakemake(workdir, config, "photos", "partial")
    run_snakemake(workdir, config, "photos", "--report", "results/photos-report.html")
    return workdir
