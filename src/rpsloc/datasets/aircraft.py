"""FGVC-Aircraft (METHOD.md section 2): id lists per split, one box per image in
`images_box.txt`, variant names as labels."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rpsloc.datasets.policy import (
    BadImageError,
    BadImages,
    Candidate,
    ReadOptions,
    duplicated,
    finish,
    not_listed,
    report_missing,
)
from rpsloc.datasets.records import ImageRecord
from rpsloc.datasets.wsol import read_image_ids, read_lines
from rpsloc.errors import InputError

AIRCRAFT_SPLITS = ("train", "val", "test", "trainval")


def aircraft_records(root: Path, split: str, options: ReadOptions) -> list[ImageRecord]:
    """FGVC-Aircraft (METHOD.md section 2): ids from `<root>/data/images_<split>.txt`, images
    `<root>/data/images/<id>.jpg`, one box per image in `data/images_box.txt` (`id xmin ymin
    xmax ymax`, 1-based as the dataset's README states; shifted to 0-based), sizes from the
    image headers. The label is the variant's line in `data/variants.txt` (0-based) when
    `data/images_variant_<split>.txt` exists, else -1. The 20-pixel copyright banner at the
    bottom of each image is kept (boxes never reach into it)."""
    root = Path(root).absolute()
    data = root / "data"
    if split not in AIRCRAFT_SPLITS:
        raise InputError(f"FGVC-Aircraft has splits {', '.join(AIRCRAFT_SPLITS)}, not {split!r}")
    bad = options.bad
    ids_file = data / f"images_{split}.txt"
    ids = read_image_ids(ids_file, bad, separator=" ")
    boxes_file = data / "images_box.txt"
    boxes: dict[str, tuple[tuple[int, int, int, int], int]] = {}
    for line_no, line in enumerate(read_lines(boxes_file), start=1):
        fields = line.split()
        if len(fields) != 5:
            raise InputError(
                f"{boxes_file}, line {line_no}: expected 'id x0 y0 x1 y1', found {line!r}"
            )
        if fields[0] not in ids:
            continue  # the file lists the images of every split
        try:
            box = tuple(int(v) for v in fields[1:])
        except ValueError:
            bad.report(
                BadImageError(
                    fields[0],
                    f"expected integers 'x0 y0 x1 y1' for {fields[0]}, found {line!r}",
                    boxes_file,
                    line_no,
                )
            )
            continue
        if fields[0] in boxes:
            bad.report(duplicated(fields[0], boxes_file, line_no, boxes[fields[0]][1]))
        else:
            boxes[fields[0]] = (box, line_no)  # type: ignore[assignment]
    report_missing(ids, boxes, boxes_file, ids_file, bad)
    labels = _aircraft_labels(data, split, ids, ids_file, bad)
    candidates = []
    for image_id, line in ids.items():
        if image_id in bad:
            continue
        box, box_line = boxes[image_id]
        label, label_line = labels.get(image_id, (None, None))
        candidates.append(
            Candidate(
                image_id=image_id,
                path=data / "images" / f"{image_id}.jpg",
                source=(ids_file, line),
                label=label,
                label_source=(data / f"images_variant_{split}.txt", label_line),
                boxes=[(box, boxes_file, box_line)],
                box_origin=1,
            )
        )
    return finish(candidates, options)


def _aircraft_labels(
    data: Path, split: str, ids: Mapping[str, int], ids_file: Path, bad: BadImages
) -> dict[str, tuple[int, int]]:
    """{id: (0-based variant index, line)} from images_variant_<split>.txt, or {} without it."""
    path = data / f"images_variant_{split}.txt"
    if not path.is_file():
        return {}
    variants_file = data / "variants.txt"
    if variants_file.is_file():
        names = [name for name in read_lines(variants_file) if name]
    else:  # the sorted variants of every split's variant file
        names = sorted(
            {
                line.split(" ", 1)[1]
                for other in sorted(data.glob("images_variant_*.txt"))
                for line in read_lines(other)
                if " " in line
            }
        )
    index = {name: position for position, name in enumerate(names)}
    labels: dict[str, tuple[int, int]] = {}
    for line_no, line in enumerate(read_lines(path), start=1):
        image_id, _, name = line.partition(" ")
        if not name:
            raise InputError(f"{path}, line {line_no}: expected 'id variant', found {line!r}")
        if image_id not in ids:
            bad.report(not_listed(image_id, path, line_no, ids_file))
        elif image_id in labels:
            bad.report(duplicated(image_id, path, line_no, labels[image_id][1]))
        elif name not in index:
            bad.report(
                BadImageError(
                    image_id,
                    f"variant {name!r} of {image_id} is not in {variants_file}",
                    path,
                    line_no,
                )
            )
        else:
            labels[image_id] = (index[name], line_no)
    report_missing(ids, labels, path, ids_file, bad)
    return labels
