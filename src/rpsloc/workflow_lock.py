"""Tell a stale Snakemake directory lock from a live one, so that a run killed with SIGKILL
resumes with the bare `snakemake --cores N --rerun-incomplete` (docs/reliability.md).

Snakemake marks a working directory as busy with files under `.snakemake/locks/` and removes
them when it exits, but a SIGKILL (the out-of-memory killer, a scheduler's time limit) leaves
them behind and every later run stops with "Directory cannot be locked" until someone runs
`snakemake --unlock`. Those files do not say who wrote them. So every main Snakemake process
of this workflow also holds an advisory `flock` on `.snakemake/rpsloc-owner.lock` for its whole
life; the kernel drops it when the process dies, however it dies. A new run that gets the
`flock` knows no run of this workflow on this host is alive, and removes the lock files the
dead run left. A run that cannot get it leaves everything alone, so Snakemake refuses to start
next to a live run exactly as before.

`flock` is reliable between processes of one host; between hosts on a network filesystem it
may not be. The owner file therefore records the host, and lock files left by a run on another
host are never removed here: Snakemake's own message (run `--unlock`) stands.
"""

import fcntl
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

OWNER_FILE = "rpsloc-owner.lock"


@dataclass
class DirectoryClaim:
    """The live claim of one Snakemake process on its `.snakemake` folder; the open descriptor
    is the claim, so the object must live as long as the process (the Snakefile keeps it)."""

    descriptor: int
    removed_locks: list[Path]


def claim_workflow_directory(snakemake_dir: str | Path) -> DirectoryClaim | None:
    """Claim `snakemake_dir` for this process and remove stale lock files; None while another
    live process of this host holds the claim, or when the last owner was another host."""
    snakemake_dir = Path(snakemake_dir)
    snakemake_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(snakemake_dir / OWNER_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    previous_host = os.read(descriptor, 4096).decode(errors="replace").split(" ")[0].strip()
    host = socket.gethostname()
    lock_files = sorted((snakemake_dir / "locks").glob("*.lock"))
    if lock_files and previous_host not in ("", host):
        print(
            f"rpsloc: {snakemake_dir / 'locks'} holds locks last taken on host {previous_host!r};"
            " they are left alone (if no run is alive there, run `snakemake --unlock`)",
            file=sys.stderr,
        )
        os.close(descriptor)
        return None
    for lock_file in lock_files:
        lock_file.unlink(missing_ok=True)
    if lock_files:
        print(
            f"rpsloc: removed {len(lock_files)} stale Snakemake lock file(s) left by a run"
            f" that was killed: {', '.join(p.name for p in lock_files)}",
            file=sys.stderr,
        )
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{host} {os.getpid()}\n".encode(), 0)
    return DirectoryClaim(descriptor, lock_files)
