"""What the workflow tracks beyond Snakemake's modification times (docs/reliability.md, "What is
tracked, what is not").

Snakemake reruns a job when one of its input files is newer than its output. Two inputs escape
that rule: images, which are no rule's input (a dataset has too many), and a checkpoint
replaced with its modification time kept (`cp -p`, `rsync -a`, `tar`), which looks older than
the features made from it. rpsloc tracks both by content:

- The manifest records a fingerprint of every image and mask file (`file_fingerprint`: size and
  modification time in nanoseconds, and the SHA-256 with `fingerprint: content`). Before the
  DAG is built, `record_image_changes` compares them with the files on disk and, when one
  differs, rewrites the split's change record, an input of the manifest rule, so the manifest
  is rebuilt.
- Each feature shard records the digest of its manifest rows (`images_sha256`: its images'
  paths and fingerprints, sizes, labels and boxes), and every feature and representer file the
  SHA-256 of the checkpoint it was computed with (`backbone_checkpoint_sha256`). `stale_value`
  compares the recorded value with the current one before a file is reused: a file that
  matches reads its source as `ancient` (the source's modification time does not matter), one
  that does not reads it as a plain input and is made older than it, so Snakemake reruns
  exactly the files computed from something else, whether or not its own metadata survives.
- `checkpoint_sha256` keeps a checkpoint's SHA-256 in a record file, hashing the checkpoint
  again only when its size, modification time, change time or inode differ from those recorded
  (a copy cannot preserve the change time); the record is rewritten when the SHA-256 changes.

The functions return what they found as sentences; the workflow logs them.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rpsloc.datasets.records import ImageRecord, read_manifest
from rpsloc.errors import RpslocError
from rpsloc.hashing import file_sha256
from rpsloc.io import atomic_path, read_attrs

FINGERPRINTS = ("stat", "content")
CHANGE_COLUMNS = ("image_id", "file", "recorded", "found")
_SECOND_NS = 1_000_000_000


def file_fingerprint(path: Path, content: bool = False) -> str:
    """`size:mtime_ns` of a file, `size:mtime_ns:sha256` with `content`; `missing` if absent."""
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        return "missing"
    text = f"{stat.st_size}:{stat.st_mtime_ns}"
    return f"{text}:{file_sha256(path)}" if content else text


def with_fingerprints(records: Sequence[ImageRecord], fingerprint: str) -> list[ImageRecord]:
    """The records with the fingerprints of their files (`fingerprint`: `stat` or `content`)."""
    if fingerprint not in FINGERPRINTS:
        raise ValueError(f"fingerprint must be one of {FINGERPRINTS}, got {fingerprint!r}")
    content = fingerprint == "content"
    return [
        replace(record, fingerprints=tuple(file_fingerprint(p, content) for p in record.files))
        for record in records
    ]


@dataclass(frozen=True)
class FileChange:
    """A file of a manifest whose fingerprint is not the one the manifest recorded."""

    image_id: str
    file: str
    recorded: str
    found: str


def changed_files(manifest: Path, fingerprint: str) -> list[FileChange]:
    """Every image and mask file of `manifest` that differs from its recorded fingerprint. A
    manifest rpsloc cannot read (one without fingerprints, written by an older rpsloc) is one
    change: it must be rebuilt."""
    try:
        records = read_manifest(manifest)
    except RpslocError as error:
        return [FileChange("", str(manifest), "a manifest with fingerprints", str(error))]
    content = fingerprint == "content"
    changes = []
    for record in records:
        recorded = record.fingerprints or ("none",) * len(record.files)
        for path, before in zip(record.files, recorded, strict=True):
            now = file_fingerprint(path, content)
            if now != before:
                changes.append(FileChange(record.image_id, str(path), before, now))
    return changes


def record_image_changes(manifest: Path, record: Path, fingerprint: str) -> list[str]:
    """Keep `record` (the split's change record, an input of its manifest rule) truthful: when
    a file of the existing `manifest` changed it lists the changes and is rewritten, so it is
    newer than the manifest, which is rebuilt; otherwise it is a header, older than any
    manifest (created with the modification time 0). Returns the sentences to log."""
    manifest, record = Path(manifest), Path(record)
    changes = changed_files(manifest, fingerprint) if manifest.exists() else []
    text = _table(changes)
    if changes:
        _write(record, text)
        first = changes[0]
        return [
            f"{manifest}: {len(changes)} file(s) changed since it was written (first: "
            f"{first.file} of image {first.image_id or '-'}, recorded {first.recorded}, found "
            f"{first.found}; all in {record}): the manifest is rebuilt and the feature shards "
            "holding them are recomputed"
        ]
    if not record.exists():
        create_change_record(record)
    elif record.read_text(encoding="utf-8") != text:
        times = record.stat()
        _write(record, text)
        os.utime(record, ns=(times.st_atime_ns, times.st_mtime_ns))
    return []


def create_change_record(record: Path) -> None:
    """An empty change record (a header), older than any manifest, where there is none yet.
    The workflow creates every split's before it builds the DAG: Snakemake lists a folder's
    files once, so a record that appears while the DAG is built would be missed."""
    record = Path(record)
    if not record.exists():
        _write(record, _table([]))
        os.utime(record, ns=(0, 0))


def _table(changes: Sequence[FileChange]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CHANGE_COLUMNS)
    writer.writerows((c.image_id, c.file, c.recorded, c.found) for c in changes)
    return out.getvalue()


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def shard_images_digest(manifest: Path, shard: int, shard_size: int) -> str:
    """The SHA-256 of the manifest rows of feature shard `shard` (rows `shard * shard_size`
    onwards, as the features stage cuts them): what the shard is computed from, its images'
    paths and fingerprints, sizes, labels and boxes. The features stage records it; the
    workflow compares it before reusing the shard. Read once per version of the manifest."""
    manifest = Path(manifest)
    digests = _shard_digests(str(manifest), manifest.stat().st_mtime_ns, shard_size)
    return digests[shard] if shard < len(digests) else ""


@functools.lru_cache(maxsize=64)
def _shard_digests(manifest: str, mtime_ns: int, shard_size: int) -> tuple[str, ...]:
    with open(manifest, newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))[1:]
    digests = []
    for start in range(0, len(rows), shard_size):
        digest = hashlib.sha256()
        for row in rows[start : start + shard_size]:
            digest.update(("\x1f".join(row) + "\n").encode())
        digests.append(digest.hexdigest())
    return tuple(digests)


def checkpoint_sha256(checkpoint: Path, record: Path) -> tuple[str, list[str]]:
    """The SHA-256 of `checkpoint`, from `record` while the file's size, modification time,
    change time and inode are those recorded, else hashed again. The record is rewritten (and
    so becomes newer than everything computed before) only when the SHA-256 changed; a copy
    with the same bytes updates it quietly. Returns the SHA-256 and the sentences to log."""
    checkpoint, record = Path(checkpoint), Path(record)
    key = _checkpoint_key(checkpoint)
    previous = _read_record(record)
    if previous is not None and _describes(previous, key):
        return previous["sha256"], []
    sha = file_sha256(checkpoint)
    text = json.dumps({**key, "sha256": sha}, indent=2) + "\n"
    if previous is not None and previous.get("sha256") == sha:
        times = record.stat()
        _write(record, text)
        os.utime(record, ns=(times.st_atime_ns, times.st_mtime_ns))
        return sha, []
    _write(record, text)
    if previous is None:
        return sha, []
    return sha, [
        f"checkpoint {checkpoint} changed: sha256 {sha[:16]}... now, {previous['sha256'][:16]}... "
        f"when {record} was written; what was computed from it is recomputed"
    ]


def recorded_checkpoint_sha256(checkpoint: Path, record: Path) -> str | None:
    """The SHA-256 `record` holds while `checkpoint`'s size, modification time, change time
    and inode are still those recorded, else None: a job reuses the hash the workflow took
    once per run instead of reading the whole file again (bench/job_overhead.py)."""
    previous = _read_record(Path(record))
    if previous is None or not _describes(previous, _checkpoint_key(Path(checkpoint))):
        return None
    return previous["sha256"]


def _checkpoint_key(checkpoint: Path) -> dict:
    """What identifies a checkpoint file without reading it."""
    stat = checkpoint.stat()
    return {
        "checkpoint": str(checkpoint.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
        "inode": stat.st_ino,
    }


def _describes(record: dict, key: dict) -> bool:
    return all(record.get(name) == value for name, value in key.items())


def _read_record(record: Path) -> dict | None:
    try:
        previous = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return previous if isinstance(previous, dict) and "sha256" in previous else None


def stale_value(output: Path, attribute: str, current: str, source: Path) -> str | None:
    """None when `output` is absent or records `attribute` = `current`, so it may be reused
    whatever the modification times; else the value it records ('' for none) after making it
    older than `source`, so that Snakemake, reading `source` as a plain input, reruns it."""
    output, source = Path(output), Path(source)
    if not output.exists():
        return None
    try:
        recorded = str(read_attrs(output).get(attribute, ""))
    except (RpslocError, OSError):  # incomplete or damaged: recomputed in any case
        recorded = ""
    if recorded == current:
        return None
    source_mtime = source.stat().st_mtime_ns
    times = output.stat()
    if times.st_mtime_ns >= source_mtime:
        os.utime(output, ns=(times.st_atime_ns, max(0, source_mtime - _SECOND_NS)))
    return recorded
