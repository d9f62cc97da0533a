"""The workflow through the official SLURM executor plugin on a real single-node cluster.

The test starts munged, slurmctld and slurmd (Debian's `munge` and `slurm-wlm`) with a
generated configuration in a temporary folder: one node (this machine's CPUs and memory, and
two GPUs in name only, so the profile's `gpu: 1` rules are scheduled as GPU jobs), one
partition. It runs the reliability tests' run (`reliability_config`) up to its summary with
`workflow/profiles/slurm` (resources capped to the node) and compares the results with the
local reference run of that configuration. The daemons are
always stopped at the end. Without root, the binaries, or daemons that come up within 30 s, the
test skips and says why.

The plugin polls job states at growing intervals (1 s, then 10 s longer after each poll that
finds nothing finished, up to 3 minutes), right for jobs of hours, but each dependent step of
jobs of seconds then waits up to half a minute. To keep the test short, the run's Python
processes load `QUICK_POLLING`, which caps that wait at 2 s, and the stages before and after the
features are submitted as two group jobs (`--groups`); the features shards are separate GPU
jobs, as in a real run.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import REPO, reliability_config, run_snakemake

from rpsloc import paths
from rpsloc.paths import result_files

pytestmark = pytest.mark.workflow

COMMANDS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "srun", "scontrol")
NODE = "rpsloc-node"
PARTITION = "rpsloc"
STARTUP_SECONDS = 30
TARGET = paths.SUMMARY.format(dataset="tiny")


#: A sitecustomize.py for the SLURM run: every wait between two polls of the plugin at most
#: `POLL_SECONDS` (nothing else of the plugin changes; without the plugin, nothing happens).
QUICK_POLLING = """\
try:
    from snakemake_executor_plugin_slurm import Executor
except ImportError:
    Executor = None

if Executor is not None:
    _check_active_jobs = Executor.check_active_jobs

    async def check_active_jobs(self, active_jobs):
        async for job in _check_active_jobs(self, active_jobs):
            yield job
        self.next_seconds_between_status_checks = min(
            self.next_seconds_between_status_checks, {seconds}
        )

    Executor.check_active_jobs = check_active_jobs
"""
POLL_SECONDS = 2


def _skip(reason: str) -> None:
    print(f"\nSLURM integration test skipped: {reason}", file=sys.stderr)
    pytest.skip(reason)


def _why_slurm_cannot_start() -> str | None:
    missing = [command for command in COMMANDS if shutil.which(command) is None]
    if missing:
        return f"{', '.join(missing)} not found (Debian packages slurm-wlm and munge)"
    if os.geteuid() != 0:
        return "needs root: munged, slurmctld and slurmd run as root in this test"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _node_memory_mb() -> int:
    with open("/proc/meminfo") as stream:
        total_kb = next(int(line.split()[1]) for line in stream if line.startswith("MemTotal:"))
    return int(total_kb / 1024 * 0.9)  # below what slurmd measures, or the node is invalid


def _write_cluster_config(root: Path, cpus: int, memory_mb: int) -> Path:
    """slurm.conf and gres.conf for one node and one partition, state and logs under root."""
    host = socket.gethostname().split(".")[0]
    devices = ("/dev/null", "/dev/zero")  # stand-ins for two GPUs' device files
    (root / "gres.conf").write_text(
        "".join(f"NodeName={NODE} Name=gpu File={d}\n" for d in devices)
    )
    conf = root / "slurm.conf"
    conf.write_text(
        f"""ClusterName=rpsloctest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / "munge" / "munge.socket"}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MinJobAge=3600
MpiDefault=none
ReturnToService=2
GresTypes=gpu
NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} \
Gres=gpu:2 State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
    )
    return conf


def _srun_with_config(root: Path, conf: Path) -> Path:
    """A folder with an `srun` that finds this cluster's configuration: the jobstep plugin
    removes SLURM_CONF before it calls srun (real clusters keep theirs in /etc/slurm)."""
    folder = root / "bin"
    folder.mkdir()
    wrapper = folder / "srun"
    wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {shutil.which("srun")} "$@"\n')
    wrapper.chmod(0o755)
    return folder


def _node_is_idle(env: dict) -> bool:
    result = subprocess.run(
        ["sinfo", "--noheader", "--nodes", NODE, "--format", "%t"],
        capture_output=True,
        text=True,
        env=env,
        timeout=10,
    )
    return result.returncode == 0 and result.stdout.strip() == "idle"


def _log_tails(root: Path) -> str:
    return "\n".join(
        f"--- {path.name}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-5:])
        for path in sorted(root.glob("*.log")) + sorted(root.glob("*.out"))
    )


@pytest.fixture(scope="module")
def slurm_env():
    """The environment (SLURM_CONF) of a running single-node cluster; stopped afterwards."""
    reason = _why_slurm_cannot_start()
    if reason:
        _skip(reason)
    # Not under pytest's tmp_path: munged wants a socket path every user can traverse.
    root = Path(tempfile.mkdtemp(prefix="rpsloc-slurm-"))
    root.chmod(0o755)
    daemons: list[subprocess.Popen] = []

    def start(name: str, *command: str) -> None:
        # With SLURM_CONF set, slurmd hands the same path to the jobs (their srun needs it).
        with open(root / f"{name}.out", "w") as output:
            daemons.append(
                subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
            )

    try:
        for folder in ("munge", "state", "spool"):
            (root / folder).mkdir(mode=0o755)
        key = root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        conf = _write_cluster_config(root, os.cpu_count() or 1, _node_memory_mb())
        env = {
            **os.environ,
            "SLURM_CONF": str(conf),
            "PATH": f"{_srun_with_config(root, conf)}{os.pathsep}{os.environ['PATH']}",
        }
        munge = root / "munge"
        start(
            "munged",
            "munged",
            "--foreground",
            f"--socket={munge / 'munge.socket'}",
            f"--key-file={key}",
            f"--log-file={munge / 'munged.log'}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--seed-file={munge / 'munged.seed'}",
        )
        start("slurmctld", "slurmctld", "-D", "-f", str(conf))
        start("slurmd", "slurmd", "-D", "-f", str(conf), "-N", NODE)
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _node_is_idle(env):
            stopped = [d.args[0] for d in daemons if d.poll() is not None]
            if stopped or time.monotonic() > deadline:
                why = f"{', '.join(stopped)} exited" if stopped else "the node is not idle"
                _skip(f"SLURM not up within {STARTUP_SECONDS} s ({why}):\n{_log_tails(root)}")
            time.sleep(0.5)
        yield env
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
        for daemon in reversed(daemons):
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        shutil.rmtree(root, ignore_errors=True)


def _profile_for_node(folder: Path, cpus: int, memory_mb: int) -> Path:
    """workflow/profiles/slurm with its memory requests capped to what the node has, and the
    GPU rules' CPUs per GPU, threads and memory to half of the node's, so two shards run at
    once."""
    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    resources = [profile["default-resources"], *profile["set-resources"].values()]
    for settings in resources:
        if "mem_mb" in settings:
            settings["mem_mb"] = min(settings["mem_mb"], memory_mb)
    per_gpu = max(1, cpus // 2)
    for rule, settings in profile["set-resources"].items():
        if "cpus_per_gpu" in settings:
            settings["cpus_per_gpu"] = min(settings["cpus_per_gpu"], per_gpu)
            settings["mem_mb"] = min(settings["mem_mb"], memory_mb // 2)
            profile["set-threads"][rule] = min(profile["set-threads"][rule], per_gpu)
    profile["set-threads"] = {rule: min(n, cpus) for rule, n in profile["set-threads"].items()}
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


@pytest.fixture(scope="module")
def slurm_run(slurm_env, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("slurm")
    polling = tmp_path_factory.mktemp("polling")
    (polling / "sitecustomize.py").write_text(QUICK_POLLING.format(seconds=POLL_SECONDS))
    path = os.pathsep.join(filter(None, [str(polling), slurm_env.get("PYTHONPATH")]))
    profile = _profile_for_node(
        tmp_path_factory.mktemp("profile") / "slurm", os.cpu_count() or 1, _node_memory_mb()
    )
    result = run_snakemake(
        workdir,
        reliability_config(),
        TARGET,
        "--groups",
        *(f"{rule}=prepare" for rule in ("synthetic", "manifest")),
        *(
            f"{rule}=evaluate"
            for rule in ("representer", "maps", "metrics", "boxes", "corloc", "summary")
        ),
        "--workflow-profile",
        str(profile),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-no-account",
        env={**slurm_env, "PYTHONPATH": path},
        side_by_side=False,  # the profile's resources and threads, as on a cluster
    )
    (workdir / "snakemake.log").write_text(result.stderr)
    jobs = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"],
        capture_output=True,
        text=True,
        env=slurm_env,
        check=True,
    )
    (workdir / "slurm-jobs.txt").write_text(jobs.stdout)
    return workdir


def test_the_shards_ran_as_gpu_jobs_and_the_other_stages_as_cpu_jobs(slurm_run):
    jobs = (slurm_run / "slurm-jobs.txt").read_text().splitlines()
    features = [job for job in jobs if "Comment=rule_features_" in job]
    others = [job for job in jobs if job not in features]
    assert len(features) == 3  # 2 training shards and 1 val shard of 6 images
    assert all("JobState=COMPLETED" in job for job in jobs)
    assert all("TresPerJob=gres:gpu:1" in job for job in features)
    assert len(others) == 2 and not any("gres:gpu" in job for job in others)


def test_the_slurm_run_gives_the_local_runs_summary_byte_for_byte(slurm_run, reference_run):
    summary = TARGET
    assert (slurm_run / summary).read_bytes() == (reference_run / summary).read_bytes()


def test_the_slurm_run_gives_the_local_runs_metrics_tables_and_maps(slurm_run, reference_run):
    table = result_files("tiny", "fixture", "rps", "val").table
    assert (slurm_run / table).read_bytes() == (reference_run / table).read_bytes()
    maps = result_files("tiny", "fixture", "rps", "val").maps
    with h5py.File(slurm_run / maps) as a, h5py.File(reference_run / maps) as b:
        np.testing.assert_array_equal(a["maps"][()], b["maps"][()])
