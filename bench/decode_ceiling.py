"""The decode-bound ceiling, images/s of decoding and preprocessing alone.

Feeds the `features` stage's own dataset (`transforms.PreprocessedImages`: JPEG decode, RGB,
resize, centre crop, normalise) through the stage's DataLoader settings with no model behind
it, on CUB-shaped JPEGs (tests/cub_shaped.py: CUB's own image sizes), at the evaluation
preprocessing (resize 480, crop 448) and the training one (224 x 224). No backbone can be fed
faster than this on the machine's cores: a GPU forward above it is decode-bound, a CPU
forward below it leaves the workers idle between batches.

    .venv/bin/python bench/decode_ceiling.py [--images 160] [--batch-size 16]
        [--workers 0 1 2] (--prepared SET | --wsol-metadata CUB)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import machine, result_row, write_json

from rpsloc.devices import prefetch_factor, usable_cores
from rpsloc.transforms import PreprocessedImages

REPO = Path(__file__).resolve().parents[1]
#: (resize, crop) of the evaluated splits in the fidelity workload, and of the training split.
PREPROCESSING = ((480, 448), (224, 224))


def cub_shaped_images(folder: Path, count: int, wsol_metadata: Path) -> list[Path]:
    sys.path.insert(0, str(REPO / "tests"))
    from cub_shaped import write_cub_shaped

    ids = write_cub_shaped(folder, wsol_metadata, {"test": count}, 0)["test"]
    return [folder / "images" / image_id for image_id in ids]


def decoded_per_second(
    images: list[Path], size: int, crop: int, workers: int, batch_size: int
) -> float:
    """Images/s of one pass of the stage's DataLoader over `images`, its workers' start-up
    included (a fraction of a second, as in every `features` job)."""
    loader = torch.utils.data.DataLoader(
        PreprocessedImages(images, size, crop),
        batch_size=batch_size,
        num_workers=workers,
        prefetch_factor=prefetch_factor(workers),
        shuffle=False,
    )
    start = time.perf_counter()
    decoded = sum(len(batch) for batch in loader)
    return decoded / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="*", help="default: 0, 1 and every core")
    parser.add_argument("--prepared", type=Path, help="a fidelity set: its CUB/images are read")
    parser.add_argument(
        "--wsol-metadata", type=Path, default=REPO.parent / "shared/wsol-metadata/CUB"
    )
    parser.add_argument("--json", type=Path, help="rows for run_all.py")
    arguments = parser.parse_args()
    workers = arguments.workers or sorted({0, 1, usable_cores()})
    with tempfile.TemporaryDirectory(prefix="rpsloc-decode-") as name:
        if arguments.prepared:
            images = sorted((arguments.prepared / "CUB" / "images").rglob("*.jpg"))
            images = images[: arguments.images]
        else:
            images = cub_shaped_images(Path(name), arguments.images, arguments.wsol_metadata)
        print(f"{machine()}; {len(images)} CUB-shaped JPEGs, batch {arguments.batch_size}")
        rows = []
        for size, crop in PREPROCESSING:
            rates = {
                count: decoded_per_second(images, size, crop, count, arguments.batch_size)
                for count in workers
            }
            for count, rate in rates.items():
                print(f"resize {size}, crop {crop}, {count} worker(s): {rate:.1f} images/s")
            best = max(rates, key=rates.get)
            rows.append(
                result_row(
                    "decode ceiling",
                    f"images/s decoding and preprocessing alone, resize {size} crop {crop}, "
                    f"best of workers {workers} ({best})",
                    rates[best],
                    "",
                    None,
                )
            )
    write_json(arguments.json, rows)


if __name__ == "__main__":
    main()
