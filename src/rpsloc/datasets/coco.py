"""COCO20k (docs/datasets.md "COCO20k"): the 19,817 COCO 2014 training images that LOST and
TokenCut evaluate object discovery on, read from the COCO instances JSON and the image list
LOST distributes (`datasets/coco_20k_filenames.txt`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rpsloc.datasets.policy import (
    BadImageError,
    Candidate,
    ReadOptions,
    escape_error,
    escapes,
    finish,
)
from rpsloc.datasets.records import ImageRecord
from rpsloc.errors import InputError

#: `coco20k`: the images of LOST's list, which the peers evaluate; `train`: every image of the
#: instances JSON (COCO train2014), for a `w*` from more images than the evaluated ones.
COCO20K_SPLITS = ("coco20k", "train")


def coco_box(bbox: Any, width: int, height: int, where: str) -> tuple[int, int, int, int]:
    """COCO's `[x, y, w, h]` (float pixels from the image's corner) as the peers round it,
    `round(x), round(y), round(x + w), round(y + h)` (Python's rounding, half to even), stored
    with `x1`, `y1` inclusive: one less, and clipped to the `width` x `height` image (COCO has
    boxes that pass the border by a fraction of a pixel). A box narrower than half a pixel,
    which the peers keep with zero area, becomes one pixel wide: no box of more than two
    pixels reaches IoU 0.5 with it, so CorLoc is the same."""
    if not (isinstance(bbox, list) and len(bbox) == 4):
        raise InputError(f"{where}: expected bbox [x, y, w, h], found {bbox!r}")
    try:
        x, y, w, h = (float(value) for value in bbox)
    except (TypeError, ValueError):
        raise InputError(f"{where}: expected numbers in bbox, found {bbox!r}") from None
    if w < 0 or h < 0:
        raise InputError(f"{where}: negative width or height in bbox {bbox!r}")
    x0, y0 = min(round(x), width - 1), min(round(y), height - 1)
    x1, y1 = min(round(x + w) - 1, width - 1), min(round(y + h) - 1, height - 1)
    return x0, y0, max(x0, x1), max(y0, y1)


def coco20k_records(
    images: Path, annotations: Path, image_list: Path, split: str, options: ReadOptions
) -> list[ImageRecord]:
    """Split `coco20k`: the images of `image_list` (lines such as
    `train2014/COCO_train2014_000000000009.jpg`; the file is looked up by its name in `images`,
    the train2014 folder); split `train`: every image of the instances JSON `annotations`, in
    its order. Sizes and objects come from the JSON. Every object is kept; `iscrowd` ones are
    flagged `crowd` and left out of every evaluation, as the peers drop them. The image id is
    the COCO id (`9`). Labels are unknown (-1): COCO images hold several classes."""
    if split not in COCO20K_SPLITS:
        raise InputError(f"COCO20k has the splits {list(COCO20K_SPLITS)}, not {split!r}")
    images = Path(images).absolute()
    instances = _load_instances(Path(annotations))
    entries = {}
    for index, entry in enumerate(instances["images"]):
        if not isinstance(entry, Mapping) or not {"id", "width", "height"} <= entry.keys():
            raise InputError(
                f"{annotations}: images[{index}]: expected an object with id, width and height"
            )
        entries[entry["id"]] = entry
    objects: dict[int, list[tuple[int, Mapping[str, Any]]]] = {}
    for index, item in enumerate(instances["annotations"]):
        if not isinstance(item, Mapping) or not {"image_id", "bbox"} <= item.keys():
            raise InputError(
                f"{annotations}: annotations[{index}]: expected an object with image_id and bbox"
            )
        objects.setdefault(item["image_id"], []).append((index, item))
    if split == "train":
        listed = [
            (str(entry.get("file_name", "")), (Path(annotations), None), f"images[{index}]")
            for index, entry in enumerate(instances["images"])
        ]
    else:
        listed = _listed_images(Path(image_list))
    seen: dict[str, str] = {}
    candidates = []
    for name, (file, line), where in listed:
        stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        image_id = stem.rsplit("_", 1)[-1].lstrip("0") or "0"
        try:
            if escapes(name):
                raise escape_error(image_id, name, file, line)
            if not image_id.isdigit():
                raise BadImageError(
                    image_id,
                    f"{where}: expected a COCO file name ending in _<id>, found {name!r}",
                    file,
                    line,
                )
            if image_id in seen:
                raise BadImageError(
                    image_id,
                    f"{where}: duplicated image {image_id} (first at {seen[image_id]})",
                    file,
                    line,
                )
            seen[image_id] = where
            entry = entries.get(int(image_id))
            if entry is None:
                raise BadImageError(
                    image_id, f"image {image_id} is not in {annotations}", file, line
                )
            size = (int(entry["width"]), int(entry["height"]))
            boxes, flags = [], []
            for index, item in objects.get(int(image_id), []):
                try:
                    box = coco_box(item["bbox"], *size, f"annotations[{index}]")
                except InputError as error:
                    raise BadImageError(image_id, str(error), annotations) from None
                boxes.append((box, Path(annotations), None))
                flags.append(("crowd",) if item.get("iscrowd", 0) == 1 else ())
            candidates.append(
                Candidate(
                    image_id=image_id,
                    path=images / name.rsplit("/", 1)[-1],
                    source=(file, line),
                    boxes=boxes,
                    box_flags=tuple(flags),
                    size=size,
                    size_source=(Path(annotations), None),
                )
            )
        except BadImageError as error:
            options.bad.report(error)
    return finish(candidates, options)


def _listed_images(image_list: Path) -> list[tuple[str, tuple[Path, int], str]]:
    """(file name, (list, line), where) of every non-empty line of LOST's image list."""
    try:
        lines = image_list.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InputError(f"{image_list}: cannot read the image list ({error})") from None
    return [
        (text.strip(), (image_list, line), f"line {line}")
        for line, text in enumerate(lines, start=1)
        if text.strip()
    ]


def _load_instances(path: Path) -> Mapping[str, Any]:
    try:
        with path.open(encoding="utf-8") as stream:
            instances = json.load(stream)
    except OSError as error:
        raise InputError(f"{path}: cannot read the COCO annotations ({error})") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}, line {error.lineno}: not valid JSON ({error.msg})") from None
    for key in ("images", "annotations"):
        if not isinstance(instances, Mapping) or not isinstance(instances.get(key), list):
            raise InputError(f"{path}: expected a COCO instances file with a list {key!r}")
    return instances
