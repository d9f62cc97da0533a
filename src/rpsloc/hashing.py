"""Content hashes written into outputs: of a file (a checkpoint) and of a config section.

Standard library only, so that a features job's own process, which hands its shard to the
warm process (`rpsloc.extraction_server`), imports neither numpy nor h5py: its script's
imports took 0.14 s with them and take 0.06 s without, on two cores (bench/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed, for provenance attributes of checkpoints and configs."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def config_hash(section: Mapping[str, Any]) -> str:
    """A short, order-independent hash of a configuration section, written into outputs."""
    text = json.dumps(section, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
