"""The features jobs of a run share a warm process: the first one starts a Python that keeps
torch imported, the last backbone built and its kernels warm; each later job hands it its
shard and waits, instead of paying a fresh process's start-up (`import torch` alone takes
about 1.7 s on two cores, a 64-image shard at 448 px about 12 s; bench/RESULTS.md, (3)).
docs/architecture.md, "The warm extraction process", says how it behaves.

This module imports no torch: a job's process imports it only when it extracts by itself
(`features.warm_process: false`, or no warm process could be used; its log says why).

One server per slot: a job holds a slot's lock (`flock`) for as long as it uses that slot's
server, so jobs running side by side each get their own server, and a server exits only
while it holds its slot's lock itself (after `IDLE_SECONDS` without a job), so no job ever
connects to a server that is leaving. A server belongs to one working directory, Python,
host, user and environment (`server_key`), and refuses a job once a module it has imported
changed on disk since (a stale server never extracts). A job whose process ends while its
server extracts ends the server with it: nothing is written for a job that no longer runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

from rpsloc import __version__
from rpsloc.logging import FAILED as FAILED_LINE
from rpsloc.logging import to_log

log = logging.getLogger(__name__)

#: A server leaves after this many seconds without a job.
IDLE_SECONDS = 30.0
#: How long a job waits for a server it started to listen (it imports torch first).
START_SECONDS = 120.0
#: Servers of one key at most: jobs beyond as many side by side extract by themselves.
MAX_SLOTS = 8
#: A server's exit status when its job's process ended during the job.
JOB_GONE = 3

DONE, FAILED, STALE = "done", "failed", "stale"
#: What a server's Python runs (this module by its name, so its jobs unpickle as they were sent).
SERVER_MAIN = "from rpsloc.extraction_server import main; main()"


@dataclass(frozen=True)
class ShardJob:
    """What one features job asks for: `extract_shard`'s keyword arguments (plain values),
    the job's log and its torch threads."""

    arguments: Mapping[str, Any]
    log: str
    threads: int


def run_features_job(job: ShardJob, warm_process: bool) -> None:
    """Extract one shard as the features rule does: in the warm process when `warm_process`
    and one can be used, else in this process; the job's log receives the stage's output
    either way (and, in this process, why no warm process ran it)."""
    reason = "features.warm_process is false"
    if warm_process:
        try:
            if _extract_in_server(job):
                return
            reason = f"every one of the {MAX_SLOTS} warm processes is in use"
        except (NoWarmProcessError, OSError) as error:
            reason = str(error)
    with to_log(job.log):
        log.info("features: extracting in the job's own process (%s)", reason)
        extract_here(job, backbone_cache=None)


def extract_here(job: ShardJob, backbone_cache: dict | None) -> None:
    """`extract_shard` in this process with the job's threads (imports torch)."""
    import torch

    from rpsloc.features import extract_shard

    torch.set_num_threads(job.threads)
    extract_shard(**job.arguments, backbone_cache=backbone_cache)


class NoWarmProcessError(RuntimeError):
    """No warm process can take this job; the message says why (the job extracts by itself)."""


def server_key() -> str:
    """What a server is shared by: the working directory, the Python, the host, the user,
    rpsloc's version and the whole environment (a server runs every job in its own)."""
    identity = {
        "cwd": os.getcwd(),
        "python": sys.executable,
        "host": socket.gethostname(),
        "uid": os.getuid(),
        "rpsloc": __version__,
        "environment": dict(os.environ),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def server_folder() -> Path:
    """The user's folder of sockets, locks and server logs under the temporary directory:
    made with mode 0700, refused when someone else owns it or others may enter it (whoever
    can connect to a server runs code in it)."""
    folder = Path(tempfile.gettempdir()) / f"rpsloc-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    status = folder.lstat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077 or folder.is_symlink():
        raise NoWarmProcessError(
            f"{folder} is not this user's private folder (owner {status.st_uid}, mode "
            f"{oct(status.st_mode & 0o777)})"
        )
    return folder


@dataclass(frozen=True)
class Slot:
    """The files of one server: its socket, the lock its job holds, its own log."""

    socket: Path
    lock: Path
    log: Path

    @classmethod
    def of(cls, folder: Path, key: str, index: int) -> Slot:
        stem = folder / f"{key}-{index}"
        return cls(stem.with_suffix(".sock"), stem.with_suffix(".lock"), stem.with_suffix(".log"))


def _extract_in_server(job: ShardJob) -> bool:
    """Run `job` in a free slot's server (started when it has none); False when every slot
    is taken. The job's process exits with status 1 when the server reports the stage failed
    (its log holds the error, as `to_log` writes it)."""
    folder, key = server_folder(), server_key()
    for index in range(MAX_SLOTS):
        slot = Slot.of(folder, key, index)
        with _held(slot.lock) as held:
            if not held:
                continue
            outcome = _send(_connect_or_start(slot), job, slot)
            if outcome == STALE:
                outcome = _send(_connect_or_start(slot), job, slot)
            if outcome == FAILED:
                raise SystemExit(1)
            if outcome != DONE:
                raise NoWarmProcessError(f"the warm process answered {outcome!r}")
            return True
    return False


@contextlib.contextmanager
def _held(lock: Path) -> Iterator[bool]:
    """An exclusive hold of `lock` if nobody else has it (True), else False at once."""
    with lock.open("a") as stream:
        yield _try_lock(stream)


def _connect(slot: Slot) -> Connection | None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(slot.socket))
    except (FileNotFoundError, ConnectionRefusedError):
        client.close()
        return None
    return Connection(client.detach())


def _connect_or_start(slot: Slot) -> Connection:
    """A connection to the slot's server; a new server when none listens (a socket left by
    a dead one is removed first). Called only while holding the slot's lock."""
    connection = _connect(slot)
    if connection is not None:
        return connection
    slot.socket.unlink(missing_ok=True)
    with slot.log.open("wb") as server_log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SERVER_MAIN,
                str(slot.socket),
                str(slot.lock),
                str(IDLE_SECONDS),
            ],
            stdin=subprocess.DEVNULL,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise NoWarmProcessError(
                f"the warm process ended at its start (status {server.returncode}; its log: "
                f"{slot.log}): {_tail(slot.log)}"
            )
        if slot.socket.exists():
            connection = _connect(slot)
            if connection is not None:
                return connection
        time.sleep(0.02)
    server.kill()
    raise NoWarmProcessError(f"the warm process did not listen within {START_SECONDS:.0f} s")


def _send(connection: Connection, job: ShardJob, slot: Slot) -> str:
    with connection:
        connection.send((directory_identity(), job))
        try:
            return connection.recv()
        except EOFError:
            message = (
                f"the warm process ended during the job (its log: {slot.log}): {_tail(slot.log)}"
            )
            with Path(job.log).open("a") as stream:
                stream.write(f"rpsloc: {FAILED_LINE}RuntimeError: {message}\n")
            raise SystemExit(1) from None


def directory_identity() -> tuple[int, int]:
    """The working directory's device and inode: a folder removed and made again under the
    same name is another folder, whose server must not serve it (its old one is gone)."""
    status = os.stat(".")
    return status.st_dev, status.st_ino


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(its log is empty)"


class LoadedModules:
    """The modification times of every module file this process has imported, to tell when
    one changed on disk (the server would run the old code)."""

    def __init__(self) -> None:
        self.seen: dict[str, int | None] = {}
        self.record()

    def record(self) -> None:
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if path and path not in self.seen:
                self.seen[path] = _mtime(path)

    def changed(self) -> str | None:
        """Which file changed or went since it was imported, or None."""
        for path, mtime in self.seen.items():
            if _mtime(path) != mtime:
                return f"{path} changed since this process imported it"
        return None


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def serve(socket_path: Path, lock_path: Path, idle_seconds: float = IDLE_SECONDS) -> None:
    """Listen on `socket_path` and run the jobs sent there one at a time, until
    `idle_seconds` pass without one while nobody holds `lock_path`, or a module changed.
    The socket goes before the lock is let go or a job told, so no job connects to a server
    that is leaving."""
    import torch  # noqa: F401  (the start-up the jobs are spared)

    import rpsloc.features  # noqa: F401

    modules = LoadedModules()
    backbone_cache: dict = {}
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(1)
    listener.settimeout(idle_seconds)

    def stop_listening() -> None:
        socket_path.unlink(missing_ok=True)
        listener.close()

    served = 0
    while True:
        try:
            accepted, _ = listener.accept()
        except TimeoutError:
            with lock_path.open("a") as lock:
                if _try_lock(lock):
                    stop_listening()
                    return
            continue
        accepted.setblocking(True)
        with Connection(accepted.detach()) as connection:
            try:
                directory, job = connection.recv()
            except EOFError:  # the job's process ended before it asked
                continue
            stale = modules.changed()
            if directory != directory_identity():
                stale = "its working directory was removed (a folder of that name is another one)"
            if stale is None:
                served += 1
                stale = _serve_one(connection, job, backbone_cache, served)
                modules.record()
            if stale is not None:
                print(f"rpsloc: stopped: {stale}", flush=True)
                stop_listening()
                connection.send(STALE)
                return


def _try_lock(lock: IO[str]) -> bool:
    """Whether this process now holds `lock` exclusively (False at once if another does)."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _serve_one(
    connection: Connection, job: ShardJob, backbone_cache: dict, served: int
) -> str | None:
    """Run one job under its log and answer DONE or FAILED; the process exits at once if the
    job's process ends first. An error outside the stage (its log cannot be opened, say) is
    returned unanswered: the server stops, and the job tries a fresh one, then itself."""
    finished = threading.Event()
    watcher = threading.Thread(target=_exit_when_gone, args=(connection, finished), daemon=True)
    watcher.start()
    outcome = DONE
    try:
        with to_log(job.log):
            log.info("features: in the warm process %d (its job %d)", os.getpid(), served)
            extract_here(job, backbone_cache)
    except SystemExit:
        outcome = FAILED
    except Exception:
        finished.set()
        traceback.print_exc()
        return f"job {served} failed outside its log"
    finished.set()
    connection.send(outcome)
    watcher.join(timeout=10)
    return None


def _exit_when_gone(connection: Connection, finished: threading.Event) -> None:
    """Watch the job's end of the connection: it closes before the answer only when the
    job's process ended (killed, or its run stopped), and then this process ends too."""
    with contextlib.suppress(OSError, ValueError):  # the server closed it: the job is over
        select.select([connection.fileno()], [], [])
    if not finished.is_set():
        os._exit(JOB_GONE)


def main() -> None:
    """A server's Python: `SERVER_MAIN SOCKET LOCK IDLE_SECONDS`."""
    serve(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
