"""PASCAL VOC-style XML annotations (METHOD.md section 2): one file per image with its size and
one `object/bndbox` per object, as PASCAL VOC 2007 and 2012 and Stanford Dogs ship them; and
the PASCAL VOC layout itself (docs/datasets.md "PASCAL VOC")."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from rpsloc.datasets.policy import (
    BadImageError,
    BoxLine,
    Candidate,
    ReadOptions,
    duplicated,
    escape_error,
    escapes,
    finish,
)
from rpsloc.datasets.records import ImageRecord
from rpsloc.errors import InputError

#: VOC's per-object flags kept in the manifest (`records.BOX_FLAGS`).
VOC_FLAGS = ("difficult", "truncated")


@dataclass(frozen=True)
class VocAnnotation:
    """One XML file: the image's (width, height), its boxes (xmin, ymin, xmax, ymax) in the
    file's own 1-based coordinates, and each box's `difficult` / `truncated` flags."""

    size: tuple[int, int]
    boxes: list[BoxLine]
    flags: tuple[tuple[str, ...], ...]


def voc_annotation(path: Path, image_id: str) -> VocAnnotation:
    """Read a VOC XML; a missing or unreadable file, a field that is not a number or an image
    without objects is a bad image, named with the file and the object's 1-based index."""
    if not path.is_file():
        raise BadImageError(image_id, f"no annotation file for image {image_id}", path)
    try:
        tree = ElementTree.parse(path)
    except (ElementTree.ParseError, OSError) as error:
        raise BadImageError(
            image_id, f"cannot parse annotation of {image_id} ({error})", path
        ) from None

    def number(element: ElementTree.Element | None, tag: str, where: str) -> int:
        text = None if element is None else element.findtext(tag)
        try:
            return int(float(text))  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):  # none, not a number, NaN or infinite
            raise BadImageError(
                image_id, f"expected a number in {where}/{tag}, found {text!r}", path
            ) from None

    def flag(item: ElementTree.Element, tag: str, where: str) -> bool:
        """An absent flag is 0, as the peers read it (`== "1"`); anything but 0/1 is an error."""
        text = (item.findtext(tag) or "0").strip()
        if text not in ("0", "1"):
            raise BadImageError(image_id, f"expected 0 or 1 in {where}/{tag}, found {text!r}", path)
        return text == "1"

    size = tree.find("size")
    width, height = number(size, "width", "size"), number(size, "height", "size")
    boxes, flags = [], []
    for index, item in enumerate(tree.iter("object"), start=1):
        box = item.find("bndbox")
        where = f"object {index}"
        coordinates = tuple(
            number(box, tag, f"{where}/bndbox") for tag in ("xmin", "ymin", "xmax", "ymax")
        )
        boxes.append((coordinates, path, None))
        flags.append(tuple(name for name in VOC_FLAGS if flag(item, name, where)))
    if not boxes:
        raise BadImageError(image_id, f"no object/bndbox for image {image_id}", path)
    return VocAnnotation((width, height), boxes, tuple(flags))  # type: ignore[arg-type]


def voc_records(root: Path, split: str, options: ReadOptions) -> list[ImageRecord]:
    """PASCAL VOC 2007 or 2012 (`VOCdevkit/VOC<year>`): the ids of
    `ImageSets/Main/<split>.txt`, images `JPEGImages/<id>.jpg`, XML `Annotations/<id>.xml`.
    Every object is kept (difficult and truncated ones flagged), as LOST and TokenCut evaluate
    them; boxes are VOC's 1-based pixels shifted to 0-based. Labels are unknown (-1): VOC
    images hold several classes."""
    root = Path(root).absolute()
    ids_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if escapes(split):
        raise InputError(f"split {split!r}: escapes the dataset root")
    try:
        lines = ids_file.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InputError(f"{ids_file}: cannot read the split's image list ({error})") from None
    seen: dict[str, int] = {}
    candidates = []
    for line, text in enumerate(lines, start=1):
        fields = text.split()
        if not fields:
            continue
        image_id = fields[0]
        try:
            if len(fields) != 1:
                raise BadImageError(
                    image_id, f"expected one image id per line, found {text!r}", ids_file, line
                )
            if escapes(image_id):
                raise escape_error(image_id, image_id, ids_file, line)
            if image_id in seen:
                raise duplicated(image_id, ids_file, line, seen[image_id])
            seen[image_id] = line
            xml = root / "Annotations" / f"{image_id}.xml"
            annotation = voc_annotation(xml, image_id)
            candidates.append(
                Candidate(
                    image_id=image_id,
                    path=root / "JPEGImages" / f"{image_id}.jpg",
                    source=(ids_file, line),
                    boxes=annotation.boxes,
                    box_origin=1,
                    box_flags=annotation.flags,
                    size=annotation.size,
                    size_source=(xml, None),
                )
            )
        except BadImageError as error:
            options.bad.report(error)
    return finish(candidates, options)
