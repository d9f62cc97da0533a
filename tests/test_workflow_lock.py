"""A killed run's Snakemake lock is cleared by the next run, a live run's lock is respected
(rpsloc.workflow_lock, docs/reliability.md "Resuming a killed run")."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_snakemake, tiny_config

from rpsloc.workflow_lock import OWNER_FILE, claim_workflow_directory


def leave_locks(snakemake_dir: Path, *outputs: str) -> list[Path]:
    """Lock files as Snakemake writes them (one path per line), as a killed run leaves them."""
    locks = snakemake_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    written = [locks / "0.input.lock", locks / "0.output.lock"]
    for path in written:
        path.write_text("".join(f"{output}\n" for output in outputs))
    return written


def test_lock_files_with_no_live_owner_are_removed(tmp_path):
    locks = leave_locks(tmp_path / ".snakemake", "results/a.h5")
    claim = claim_workflow_directory(tmp_path / ".snakemake")
    assert claim is not None
    assert claim.removed_locks == locks
    assert not any(path.exists() for path in locks)


def test_lock_files_are_kept_while_another_process_holds_the_claim(tmp_path):
    first = claim_workflow_directory(tmp_path / ".snakemake")
    locks = leave_locks(tmp_path / ".snakemake", "results/a.h5")
    assert first is not None
    assert claim_workflow_directory(tmp_path / ".snakemake") is None
    assert all(path.exists() for path in locks)


def test_the_claim_ends_when_its_process_is_killed(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from rpsloc.workflow_lock import claim_workflow_directory;"
            f" claim = claim_workflow_directory({str(tmp_path / '.snakemake')!r});"
            " print(claim is not None, flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "True"
    locks = leave_locks(tmp_path / ".snakemake", "results/a.h5")
    assert claim_workflow_directory(tmp_path / ".snakemake") is None
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert claim_workflow_directory(tmp_path / ".snakemake") is not None
    assert not any(path.exists() for path in locks)


def test_lock_files_last_taken_on_another_host_are_kept(tmp_path, capsys):
    (tmp_path / ".snakemake").mkdir()
    (tmp_path / ".snakemake" / OWNER_FILE).write_text(f"not-{socket.gethostname()} 4242\n")
    locks = leave_locks(tmp_path / ".snakemake", "results/a.h5")
    assert claim_workflow_directory(tmp_path / ".snakemake") is None
    assert all(path.exists() for path in locks)
    assert "snakemake --unlock" in capsys.readouterr().err


def test_the_owner_file_records_this_host_and_process(tmp_path):
    claim_workflow_directory(tmp_path / ".snakemake")
    owner = (tmp_path / ".snakemake" / OWNER_FILE).read_text().split()
    assert owner == [socket.gethostname(), str(os.getpid())]


@pytest.mark.workflow
def test_snakemake_refuses_to_start_next_to_a_live_run(tmp_path):
    config = tiny_config(backbones=["fixture"], variants=["rps"], eval_splits=["val"])
    live_run = claim_workflow_directory(tmp_path / ".snakemake")
    assert live_run is not None
    leave_locks(tmp_path / ".snakemake", "results/tiny/summary.csv")
    result = run_snakemake(tmp_path, config, "results/tiny/summary.csv", check=False)
    assert result.returncode != 0
    assert "cannot be locked" in result.stderr
