"""PASCAL VOC-style XML annotations (METHOD.md section 2): one file per image with its size and
one `object/bndbox` per object, as Stanford Dogs ships them."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

from rpsloc.datasets.policy import BadImageError, BoxLine


def voc_annotation(path: Path, image_id: str) -> tuple[tuple[int, int], list[BoxLine]]:
    """(width, height) and the `object/bndbox` boxes (xmin, ymin, xmax, ymax) of a VOC XML, in
    the file's own (1-based) coordinates; a missing or unreadable file is a bad image."""
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

    size = tree.find("size")
    width, height = number(size, "width", "size"), number(size, "height", "size")
    boxes = []
    for index, item in enumerate(tree.iter("object"), start=1):
        box = item.find("bndbox")
        where = f"object {index}/bndbox"
        boxes.append(
            (tuple(number(box, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax")), path, None)
        )
    if not boxes:
        raise BadImageError(image_id, f"no object/bndbox for image {image_id}", path)
    return (width, height), boxes  # type: ignore[return-value]
