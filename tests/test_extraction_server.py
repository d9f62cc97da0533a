"""The warm extraction process: the features jobs of a run hand their shards to one Python
that keeps torch imported and the last backbone built, and get the very file their own process
would have written; a server never serves stale code or a folder that is gone, never outlives
a job it is extracting for, and leaves when idle (docs/architecture.md)."""

import ast
import csv
import fcntl
import os
import re
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import pytest
from conftest import REPO, packages_imported_by

from rpsloc import extraction_server
from rpsloc.datasets.records import write_manifest
from rpsloc.extraction_server import (
    LoadedModules,
    ShardJob,
    Slot,
    run_features_job,
    server_folder,
    server_key,
)
from rpsloc.logging import read_failure
from rpsloc.manifest import build_manifest
from rpsloc.synthetic import generate_synthetic_dataset

BACKBONE = {"arch": "resnet_small", "width": 16, "depth": 1, "weights": "random", "seed": 0}
WARM = re.compile(r"in the warm process (\d+) \(its job (\d+)\)")


@pytest.fixture(autouse=True)
def short_lived_servers(monkeypatch, tmp_path):
    """Each test in a folder of its own (a server belongs to one), its servers gone 2 s after
    their last job."""
    monkeypatch.setattr(extraction_server, "IDLE_SECONDS", 2.0)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warm")
    generate_synthetic_dataset(folder / "data", splits={"test": 6}, max_side=64)
    return folder / "data"


def manifest_in(folder, images, name="test.csv"):
    records = build_manifest({"adapter": "synthetic", "root": str(images)}, "test")
    write_manifest(records, folder / name)
    return folder / name


def shard_job(manifest, out, log="shard.log", shard=0, **changes):
    arguments = {
        "manifest": str(manifest),
        "role": "eval",
        "shard": shard,
        "shard_size": 3,
        "backbone_config": BACKBONE,
        "image_size": 64,
        "crop_size": 64,
        "output_stride": 16,
        "out": str(out),
        "batch_size": 2,
        "num_workers": 0,
        "device": "cpu",
        **changes,
    }
    return ShardJob(arguments=arguments, log=str(log), threads=1)


def warm_process_of(log):
    """(pid, job number) of the warm process that ran the job of `log`, or None."""
    found = WARM.search(open(log).read())
    return (int(found[1]), int(found[2])) if found else None


def datasets_of(path):
    with h5py.File(path) as handle:
        return {name: handle[name][()] for name in handle}, dict(handle.attrs)


def gone(pid, seconds=15.0):
    """Whether process `pid` ended (or became a zombie) within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stream:
                if stream.read().rsplit(")", 1)[1].split()[0] in "ZX":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_shard_extracted_in_the_warm_process_is_the_one_the_job_would_write(tmp_path, images):
    manifest = manifest_in(tmp_path, images)
    run_features_job(shard_job(manifest, "warm.h5", "warm.log"), warm_process=True)
    run_features_job(shard_job(manifest, "own.h5", "own.log"), warm_process=False)
    assert warm_process_of("warm.log") is not None
    assert warm_process_of("own.log") is None
    warm, own = datasets_of("warm.h5"), datasets_of("own.h5")
    assert warm[0].keys() == own[0].keys()
    for name in own[0]:
        np.testing.assert_array_equal(warm[0][name], own[0][name], err_msg=name)
    assert warm[1] == own[1]


def test_the_next_job_is_served_by_the_same_process_from_its_built_backbone(tmp_path, images):
    manifest = manifest_in(tmp_path, images)
    run_features_job(shard_job(manifest, "a.h5", "a.log"), warm_process=True)
    run_features_job(shard_job(manifest, "b.h5", "b.log", shard=1), warm_process=True)
    first, second = warm_process_of("a.log"), warm_process_of("b.log")
    assert second == (first[0], first[1] + 1)
    run_features_job(shard_job(manifest, "b-own.h5", "b-own.log", shard=1), warm_process=False)
    np.testing.assert_array_equal(
        datasets_of("b.h5")[0]["unit_features"], datasets_of("b-own.h5")[0]["unit_features"]
    )


def test_a_job_with_warm_process_off_says_so_in_its_log(tmp_path, images):
    run_features_job(shard_job(manifest_in(tmp_path, images), "a.h5", "a.log"), False)
    assert "own process (features.warm_process is false)" in open("a.log").read()


def test_a_stage_error_in_the_warm_process_fails_the_job_with_its_message(tmp_path, images):
    manifest = manifest_in(tmp_path, images)
    with pytest.raises(SystemExit) as failure:
        run_features_job(shard_job(manifest, "a.h5", "a.log", shard=5), warm_process=True)
    assert failure.value.code == 1
    assert "shard 5 does not exist" in read_failure("a.log")
    assert not os.path.exists("a.h5")


def test_the_warm_process_serves_again_after_a_job_failed(tmp_path, images):
    manifest = manifest_in(tmp_path, images)
    with pytest.raises(SystemExit):
        run_features_job(shard_job(manifest, "a.h5", "a.log", shard=5), warm_process=True)
    run_features_job(shard_job(manifest, "b.h5", "b.log"), warm_process=True)
    assert warm_process_of("b.log")[1] == 2


def test_a_server_leaves_when_idle_and_takes_its_socket_with_it(tmp_path, images):
    run_features_job(shard_job(manifest_in(tmp_path, images), "a.h5", "a.log"), True)
    pid, _ = warm_process_of("a.log")
    assert gone(pid)
    assert not Slot.of(server_folder(), server_key(), 0).socket.exists()


def test_jobs_side_by_side_get_a_server_each(tmp_path, images):
    manifest = manifest_in(tmp_path, images)
    run_features_job(shard_job(manifest, "a.h5", "a.log"), warm_process=True)
    first_slot = Slot.of(server_folder(), server_key(), 0)
    with open(first_slot.lock, "a") as held:  # a job that is running there
        fcntl.flock(held, fcntl.LOCK_EX)
        run_features_job(shard_job(manifest, "b.h5", "b.log"), warm_process=True)
    assert warm_process_of("b.log")[0] != warm_process_of("a.log")[0]
    assert Slot.of(server_folder(), server_key(), 1).log.exists()


def test_a_folder_made_again_under_the_same_name_gets_a_new_server(tmp_path, images):
    work = tmp_path / "work"
    work.mkdir()
    os.chdir(work)
    run_features_job(shard_job(manifest_in(work, images), "a.h5", "a.log"), warm_process=True)
    first, _ = warm_process_of("a.log")
    os.chdir(tmp_path)
    for path in work.iterdir():
        path.unlink()
    work.rmdir()
    work.mkdir()
    os.chdir(work)
    run_features_job(shard_job(manifest_in(work, images), "a.h5", "a.log"), warm_process=True)
    second, job = warm_process_of("a.log")
    assert (second, job) != (first, 2)
    assert job == 1
    assert gone(first)


def test_a_module_changed_on_disk_is_noticed(tmp_path, monkeypatch):
    (tmp_path / "warm_probe_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import warm_probe_module  # noqa: F401

    modules = LoadedModules()
    assert modules.changed() is None
    stat = os.stat(tmp_path / "warm_probe_module.py")
    os.utime(tmp_path / "warm_probe_module.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert "warm_probe_module.py changed since this process imported it" in modules.changed()
    del sys.modules["warm_probe_module"]


def test_a_shared_temporary_folder_is_refused_and_the_job_extracts_itself(
    tmp_path, images, monkeypatch
):
    shared = tmp_path / "shared"
    (shared / f"rpsloc-{os.getuid()}").mkdir(parents=True, mode=0o777)
    os.chmod(shared / f"rpsloc-{os.getuid()}", 0o777)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(shared))
    run_features_job(shard_job(manifest_in(tmp_path, images), "a.h5", "a.log"), True)
    log = open("a.log").read()
    assert "extracting in the job's own process" in log
    assert "is not this user's private folder" in log
    assert os.path.exists("a.h5")


#: A job in a process of its own, killed while its server reads the first image: a FIFO,
#: which blocks the read until someone writes to it (nobody does).
KILLED_JOB = """
import sys
from rpsloc.extraction_server import ShardJob, run_features_job
run_features_job(ShardJob(eval(sys.argv[1]), "a.log", 1), warm_process=True)
"""


def test_a_job_killed_while_its_server_extracts_ends_the_server_and_leaves_no_shard(
    tmp_path, images
):
    manifest = manifest_in(tmp_path, images)
    with open(manifest, newline="") as stream:
        rows = list(csv.DictReader(stream))
    rows[0]["path"] = str(tmp_path / "never-written.jpg")
    os.mkfifo(rows[0]["path"])
    with open(manifest, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    arguments = shard_job(manifest, tmp_path / "a.h5").arguments
    job = subprocess.Popen([sys.executable, "-c", KILLED_JOB, repr(dict(arguments))])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        os.path.exists("a.log") and warm_process_of("a.log")
    ):
        time.sleep(0.05)
    server, _ = warm_process_of("a.log")
    time.sleep(0.5)
    job.kill()
    job.wait()
    assert gone(server)
    assert not os.path.exists("a.h5")


def test_a_job_that_finds_every_slot_taken_extracts_itself(tmp_path, images):
    manifest = manifest_in(tmp_path, images)
    slots = [Slot.of(server_folder(), server_key(), k) for k in range(extraction_server.MAX_SLOTS)]
    held = [open(slot.lock, "a") for slot in slots]
    for stream in held:
        fcntl.flock(stream, fcntl.LOCK_EX)
    try:
        run_features_job(shard_job(manifest, "a.h5", "a.log"), warm_process=True)
    finally:
        for stream in held:
            stream.close()
    assert "every one of the 8 warm processes is in use" in open("a.log").read()
    assert os.path.exists("a.h5")


def test_a_features_job_that_hands_its_shard_over_imports_no_torch_numpy_or_h5py():
    """Its process only sends the job and waits for the answer: it pays for Python, Snakemake
    and the standard library, not for the numerical stack the warm process already holds."""
    script = ast.parse((REPO / "workflow" / "scripts" / "features.py").read_text())
    modules = [node.module for node in script.body if isinstance(node, ast.ImportFrom)]
    assert not packages_imported_by(", ".join(modules)) & {"torch", "numpy", "h5py"}
