"""The manifest contract: one `ImageRecord` per image, stored as one CSV row (METHOD.md
section 2, docs/architecture.md "Manifest"). Every later stage reads the manifest through
`read_manifest`; only the manifest stage writes it."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rpsloc.errors import InputError
from rpsloc.io import atomic_path

#: The largest width, height, label or box coordinate a manifest may hold: the stage files
#: store sizes and boxes as 32-bit integers, and no image or class count comes near it.
MAX_VALUE = 2**31 - 1

MANIFEST_COLUMNS = (
    "image_id",
    "path",
    "width",
    "height",
    "label",
    "boxes",
    "mask_paths",
    "ignore_path",
    "box_origin",
    "fingerprints",
)


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One image of a split: where it is, its size, class and ground truth in original pixels.

    `boxes` is a read-only (k, 4) int64 array `x0, y0, x1, y1` (x1, y1 inclusive), 0-based;
    `box_origin` is where the annotation's own coordinates start (1 for the MATLAB-born
    Stanford Cars, Dogs and FGVC-Aircraft files), so `boxes + box_origin` are the values as
    published, which the authors' code uses unshifted. `label` is 0-based, -1 when unknown.
    `fingerprints` hold one `size:mtime_ns` (`size:mtime_ns:sha256` when content is tracked)
    per file of `files`, as the manifest stage found them (`rpsloc.tracking`); empty before
    that. Records compare equal when every field is equal (boxes by value).
    """

    image_id: str
    path: Path
    width: int
    height: int
    label: int
    boxes: np.ndarray
    mask_paths: tuple[Path, ...] = ()
    ignore_path: Path | None = None
    box_origin: int = 0
    fingerprints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        boxes = np.array(self.boxes, dtype=np.int64)
        if boxes.size == 0:
            boxes = np.zeros((0, 4), dtype=np.int64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(
                f"image {self.image_id}: expected boxes of shape (k, 4), found {boxes.shape}"
            )
        boxes.setflags(write=False)
        object.__setattr__(self, "boxes", boxes)
        if not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
        if not (
            isinstance(self.mask_paths, tuple) and all(isinstance(p, Path) for p in self.mask_paths)
        ):
            object.__setattr__(self, "mask_paths", tuple(Path(p) for p in self.mask_paths))
        if self.ignore_path is not None and not isinstance(self.ignore_path, Path):
            object.__setattr__(self, "ignore_path", Path(self.ignore_path))
        object.__setattr__(self, "fingerprints", tuple(self.fingerprints))
        if self.fingerprints and len(self.fingerprints) != len(self.files):
            raise ValueError(
                f"image {self.image_id}: expected one fingerprint per file ({len(self.files)}), "
                f"found {len(self.fingerprints)}"
            )

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the image: the image, its instance masks, its ignore mask."""
        ignore = () if self.ignore_path is None else (self.ignore_path,)
        return (self.path, *self.mask_paths, *ignore)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.image_id,
            self.path,
            self.width,
            self.height,
            self.label,
            self.mask_paths,
            self.ignore_path,
            self.box_origin,
            self.fingerprints,
        )

    @property
    def native_boxes(self) -> np.ndarray:
        """The boxes in the annotation's own coordinates (`boxes + box_origin`)."""
        return self.boxes + self.box_origin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageRecord):
            return NotImplemented
        return self._key() == other._key() and np.array_equal(self.boxes, other.boxes)

    def __hash__(self) -> int:
        return hash(self._key())


def write_manifest(records: Iterable[ImageRecord], path: Path) -> None:
    """Write records as the manifest CSV (docs/architecture.md), atomically: a temporary file
    in the same folder is renamed over `path` only once complete."""
    rows = [_manifest_row(record) for record in records]
    with atomic_path(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)


def _manifest_row(record: ImageRecord) -> list[str]:
    """One CSV row; paths are made absolute and may not contain the ';' separator."""
    for item in record.files:
        if ";" in str(item):
            raise InputError(
                f"image {record.image_id}: path {item} contains ';', the manifest's separator"
            )
    boxes = ";".join(" ".join(str(int(v)) for v in box) for box in record.boxes)
    return [
        record.image_id,
        str(record.path.absolute()),
        str(int(record.width)),
        str(int(record.height)),
        str(int(record.label)),
        boxes,
        ";".join(str(p.absolute()) for p in record.mask_paths),
        "" if record.ignore_path is None else str(record.ignore_path.absolute()),
        str(int(record.box_origin)),
        ";".join(record.fingerprints),
    ]


def read_manifest(path: Path) -> list[ImageRecord]:
    """Read a manifest CSV written by `write_manifest`; errors name the file and line."""
    path = Path(path)
    try:
        stream = path.open(newline="", encoding="utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot open manifest ({error})") from error
    records: list[ImageRecord] = []
    seen: dict[str, int] = {}
    with stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None or tuple(header) != MANIFEST_COLUMNS:
            raise InputError(
                f"{path}, line 1: expected header {','.join(MANIFEST_COLUMNS)}, found "
                f"{'nothing' if header is None else ','.join(header)}"
            )
        for row in reader:
            line = reader.line_num
            where = f"{path}, line {line}"
            if len(row) != len(MANIFEST_COLUMNS):
                raise InputError(
                    f"{where}: expected {len(MANIFEST_COLUMNS)} fields, found {len(row)}"
                )
            image_id, image_path, width, height, label, boxes, masks, ignore = row[:8]
            origin, fingerprints = row[8:]
            if not image_id:
                raise InputError(f"{where}: empty image_id")
            if image_id in seen:
                raise InputError(f"{where}: image_id {image_id!r} already on line {seen[image_id]}")
            seen[image_id] = line
            fields = {
                "width": _parse_int(width, "width", where, minimum=1),
                "height": _parse_int(height, "height", where, minimum=1),
                "label": _parse_int(label, "label", where, minimum=-1),
                "boxes": _parse_manifest_boxes(boxes, where),
                "box_origin": _parse_int(origin, "box_origin", where, minimum=0),
            }
            try:
                record = ImageRecord(
                    image_id=image_id,
                    path=Path(image_path),
                    mask_paths=tuple(Path(p) for p in masks.split(";")) if masks else (),
                    ignore_path=Path(ignore) if ignore else None,
                    fingerprints=tuple(fingerprints.split(";")) if fingerprints else (),
                    **fields,
                )
            except ValueError as error:  # fingerprints that do not match the files
                raise InputError(f"{where}: {error}") from None
            records.append(record)
    return records


def _parse_int(text: str, name: str, where: str, minimum: int = -MAX_VALUE) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{where}: expected an integer {name}, found {text!r}") from None
    if not minimum <= value <= MAX_VALUE:
        raise InputError(
            f"{where}: expected {name} between {minimum} and {MAX_VALUE}, found {value}"
        )
    return value


def _parse_manifest_boxes(text: str, where: str) -> np.ndarray:
    if not text:
        return np.zeros((0, 4), dtype=np.int64)
    boxes = []
    for part in text.split(";"):
        values = part.split()
        if len(values) != 4:
            raise InputError(f"{where}: expected boxes as 'x0 y0 x1 y1;...', found {part!r}")
        boxes.append([_parse_int(v, "box coordinate", where) for v in values])
    return np.array(boxes, dtype=np.int64)
