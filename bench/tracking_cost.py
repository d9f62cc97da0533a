"""Benchmark 6: what content tracking costs at DAG time (docs/reliability.md, "What is tracked").

Writes `--images` small files and a manifest listing them, then times what every Snakemake
invocation does per split before it builds the DAG: the stat scan of `fingerprint: stat`, the
digest of every feature shard's rows, and the read of one attribute per existing feature
shard; and what `fingerprint: content` adds: hashing every file, measured on `--hash-mb` of
files of `--hash-kb` each (the page cache is dropped by nobody here, so this is the speed of
reading cached files: a cold disk is slower). Also the checkpoint's SHA-256, computed once per
change of the file, versus the stat that finds it unchanged.

    .venv/bin/python bench/tracking_cost.py [--images 100000] [--hash-mb 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine

from rpsloc.datasets.records import ImageRecord, write_manifest
from rpsloc.io import atomic_h5
from rpsloc.tracking import (
    changed_files,
    checkpoint_sha256,
    shard_images_digest,
    stale_value,
    with_fingerprints,
)


def write_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True)
    data = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    paths = []
    for index in range(count):
        path = folder / f"{index // 1000:04d}" / f"{index:07d}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def manifest_of(paths: list[Path], out: Path, fingerprint: str) -> tuple[Path, float]:
    records = [
        ImageRecord(f"{p.parent.name}/{p.name}", p, 1, 1, 0, np.zeros((0, 4))) for p in paths
    ]
    start = time.perf_counter()
    records = with_fingerprints(records, fingerprint)
    seconds = time.perf_counter() - start
    write_manifest(records, out)
    return out, seconds


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--hash-mb", type=int, default=512)
    parser.add_argument("--hash-kb", type=int, default=110, help="ImageNet's mean JPEG: 110 kB")
    parser.add_argument("--checkpoint-mb", type=int, default=200)
    arguments = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = write_files(root / "images", arguments.images, 1024)
        manifest, fingerprinting = manifest_of(paths, root / "stat.csv", "stat")
        _, scan = timed(changed_files, manifest, "stat")
        shards = -(-arguments.images // arguments.shard_size)
        _, digests = timed(
            lambda: [shard_images_digest(manifest, k, arguments.shard_size) for k in range(shards)]
        )
        print(f"{arguments.images} images, {shards} shards of {arguments.shard_size}:")
        print(f"  stat fingerprints at the manifest stage: {fingerprinting:.2f} s")
        per_image = scan / arguments.images * 1e6
        print(f"  stat scan before every DAG: {scan:.2f} s ({per_image:.1f} us/image)")
        print(f"  digest of every shard's rows (manifest read once): {digests:.2f} s")

        record = root / "record.json"
        record.write_text("{}")
        outputs = []
        for k in range(min(shards, 100)):
            with atomic_h5(root / "shards" / f"shard-{k}.h5", {"images_sha256": "x"}):
                pass
            outputs.append(root / "shards" / f"shard-{k}.h5")
        _, attrs = timed(lambda: [stale_value(p, "images_sha256", "x", record) for p in outputs])
        per_shard = attrs / len(outputs) * 1e3
        print(f"  recorded digest of an existing shard, read: {per_shard:.2f} ms/shard")

        count = arguments.hash_mb * 1024 // arguments.hash_kb
        hashed = write_files(root / "hashed", count, arguments.hash_kb * 1024)
        content, _ = manifest_of(hashed, root / "content.csv", "content")
        _, seconds = timed(changed_files, content, "content")
        gigabytes = count * arguments.hash_kb * 1024 / 1e9
        print(f"content scan of {count} files of {arguments.hash_kb} kB ({gigabytes:.2f} GB):")
        per_image = seconds / count
        print(f"  {seconds:.2f} s, {gigabytes / seconds:.2f} GB/s, {per_image * 1e3:.2f} ms/image")
        print(f"  extrapolated to {arguments.images} images: {per_image * arguments.images:.0f} s")

        checkpoint = root / "checkpoint.pth"
        checkpoint.write_bytes(np.random.default_rng(1).bytes(arguments.checkpoint_mb * 10**6))
        _, first = timed(checkpoint_sha256, checkpoint, root / "checkpoint.json")
        _, again = timed(checkpoint_sha256, checkpoint, root / "checkpoint.json")
        print(f"checkpoint of {arguments.checkpoint_mb} MB: SHA-256 {first:.2f} s once per change,")
        print(f"  {again * 1e3:.2f} ms at every later DAG (stat and record)")


if __name__ == "__main__":
    main()
