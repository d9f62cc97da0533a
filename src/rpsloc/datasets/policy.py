"""What happens to a bad image (METHOD.md section 2, docs/datasets.md "Bad input").

Problems confined to one image (a missing or unreadable file, a bad box, an out-of-range
label, a value that is not an integer or too large for the stage files, an id missing from one
metadata file, a duplicated or escaping id) are `BadImageError` errors: they stop the run, or
with `on_bad_image: skip` the image is left out and listed in the split's skipped table.
Problems with a whole file (a line with the wrong number of fields, a missing metadata file)
always stop the run. Every message names the file and line (or `.mat` entry).

Adapters describe each image as a `Candidate`; `finish` checks its files, size, label and
boxes the same way for every layout.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rpsloc.datasets.records import MAX_VALUE, ImageRecord
from rpsloc.errors import InputError
from rpsloc.io import atomic_path

SKIPPED_COLUMNS = ("image_id", "file", "line", "reason")
CHECK_IMAGES = ("none", "header", "decode")
ON_BAD_IMAGE = ("error", "skip")


class BadImageError(InputError):
    """A problem confined to one image. `file` and `line` say where it was found (for `.mat`
    files `line` is the 1-based entry of the list, and the message says "entry")."""

    def __init__(
        self,
        image_id: str,
        message: str,
        file: Path | str | None = None,
        line: int | None = None,
        unit: str = "line",
    ) -> None:
        if file is None:
            where = ""
        elif line is None:
            where = f"{file}: "
        else:
            where = f"{file}, {unit} {line}: "
        super().__init__(where + message)
        self.image_id = image_id
        self.file = "" if file is None else str(file)
        self.line = line


@dataclass(frozen=True)
class Skipped:
    """An image left out of a split under `on_bad_image: skip`, with the first reason found."""

    image_id: str
    file: str
    line: int | None
    reason: str


class BadImages:
    """Where per-image problems go: raised at once (`on_bad_image: error`, the default) or
    remembered, one reason per image, and the image left out (`skip`)."""

    def __init__(self, skip: bool = False) -> None:
        self.skip = skip
        self._found: dict[str, Skipped] = {}

    def report(self, error: BadImageError) -> None:
        if not self.skip:
            raise error
        if error.image_id not in self._found:
            self._found[error.image_id] = Skipped(
                error.image_id, error.file, error.line, str(error)
            )

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._found

    @property
    def skipped(self) -> list[Skipped]:
        return list(self._found.values())


@dataclass(frozen=True)
class ReadOptions:
    """How an adapter checks what it reads.

    `check_images`: `none` opens no image (sizes must come from metadata), `header` reads each
    image's header (size; catches missing and non-image files), `decode` decodes every image
    fully (also catches truncated files; slow). `check_files=False` checks no file at all (to
    inspect metadata without the images; unknown sizes are then 0). `num_classes` bounds the
    0-based labels. `work_dir` is where adapters that must write images (CIFAR) write them.
    """

    check_images: str = "header"
    check_files: bool = True
    num_classes: int | None = None
    bad: BadImages = field(default_factory=BadImages)
    work_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.check_images not in CHECK_IMAGES:
            raise InputError(
                f"check_images: expected one of {', '.join(CHECK_IMAGES)}, found "
                f"{self.check_images!r}"
            )


# --------------------------------------------------------------------------- candidates

#: A box as its file states it, with where it was read: (x0, y0, x1, y1), file, line.
BoxLine = tuple[tuple[int, int, int, int], Path, int | None]


@dataclass
class Candidate:
    """An image as its metadata describes it, before its files and values are checked.

    `boxes` holds the file's own coordinates with where each box was read; `box_origin` is 1
    for datasets whose pixel coordinates start at 1 (they are shifted to 0-based)."""

    image_id: str
    path: Path
    source: tuple[Path, int | None]
    label: int | None = None
    label_source: tuple[Path, int | None] | None = None
    boxes: list[BoxLine] = field(default_factory=list)
    box_origin: int = 0
    size: tuple[int, int] | None = None
    size_source: tuple[Path, int | None] | None = None
    mask_paths: tuple[Path, ...] = ()
    ignore_path: Path | None = None
    unit: str = "line"


def finish(candidates: Iterable[Candidate], options: ReadOptions) -> list[ImageRecord]:
    """Check each candidate's files, size, label and boxes; bad ones go to `options.bad`."""
    records = []
    for candidate in candidates:
        if candidate.image_id in options.bad:
            continue
        try:
            records.append(_checked_record(candidate, options))
        except BadImageError as error:
            options.bad.report(error)
    return records


def _checked_record(candidate: Candidate, options: ReadOptions) -> ImageRecord:
    image_id = candidate.image_id
    file, line = candidate.source
    if options.check_files:
        if not os.path.exists(candidate.path):
            raise BadImageError(
                image_id,
                f"image {image_id}: file not found: {candidate.path}",
                file,
                line,
                candidate.unit,
            )
        for mask in (*candidate.mask_paths, candidate.ignore_path):
            if mask is not None and not os.path.exists(mask):
                raise BadImageError(
                    image_id,
                    f"image {image_id}: mask file not found: {mask}",
                    file,
                    line,
                    candidate.unit,
                )
    width, height = candidate.size or (0, 0)
    if options.check_files and (candidate.size is None or options.check_images != "none"):
        found = image_size(candidate.path, image_id, decode=options.check_images == "decode")
        if candidate.size is not None and found != candidate.size:
            size_file, size_line = candidate.size_source or candidate.source
            raise BadImageError(
                image_id,
                f"size of {image_id} is {width}x{height}, but the image {candidate.path} is "
                f"{found[0]}x{found[1]}",
                size_file,
                size_line,
            )
        width, height = found
    if max(width, height) > MAX_VALUE:
        size_file, size_line = candidate.size_source or candidate.source
        raise BadImageError(
            image_id,
            f"expected a size of at most {MAX_VALUE} pixels for {image_id}, found {width}x{height}",
            size_file,
            size_line,
            candidate.unit,
        )
    label = -1 if candidate.label is None else candidate.label
    if candidate.label is not None:
        _check_label(candidate, candidate.label, options.num_classes)
    return ImageRecord(
        image_id=image_id,
        path=candidate.path,
        width=width,
        height=height,
        label=label,
        boxes=_checked_boxes(candidate, width, height),
        mask_paths=candidate.mask_paths,
        ignore_path=candidate.ignore_path,
        box_origin=candidate.box_origin,
    )


def image_size(path: Path, image_id: str, decode: bool = False) -> tuple[int, int]:
    """(width, height) from the image header; with `decode`, after decoding every pixel, so a
    truncated file is caught. An unreadable file is a BadImageError naming the path."""
    try:
        with Image.open(path) as image:
            if decode:
                image.load()
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        action = "decode" if decode else "read the header of"
        raise BadImageError(
            image_id, f"cannot {action} image {image_id} ({error})", path
        ) from error


def _check_label(candidate: Candidate, label: int, num_classes: int | None) -> None:
    file, line = candidate.label_source or candidate.source
    if label < 0:
        raise BadImageError(
            candidate.image_id,
            f"expected a label >= 0 for image {candidate.image_id}, found {label}",
            file,
            line,
            candidate.unit,
        )
    limit = MAX_VALUE + 1 if num_classes is None else num_classes
    if label >= limit:
        raise BadImageError(
            candidate.image_id,
            f"expected a label < {limit} (0-based) for image {candidate.image_id}, found {label}",
            file,
            line,
            candidate.unit,
        )


def _checked_boxes(candidate: Candidate, width: int, height: int) -> np.ndarray:
    """0-based boxes of one image, each inside the image with x0 <= x1, y0 <= y1."""
    shifted = [
        checked_box(candidate.image_id, box, path, line, width, height, candidate.box_origin)
        for box, path, line in candidate.boxes
    ]
    if not shifted:
        return np.zeros((0, 4), dtype=np.int64)
    return np.array(shifted, dtype=np.int64)


def checked_box(
    image_id: str,
    box: tuple[int, int, int, int],
    file: Path | str | None,
    line: int | None,
    width: int = 0,
    height: int = 0,
    origin: int = 0,
) -> tuple[int, int, int, int]:
    """`box` shifted to 0-based, once x0 <= x1, y0 <= y1 and it lies in the width x height
    image (a size of 0, unknown, checks the lower bounds only); otherwise a BadImageError
    naming `file` and `line`, since a box that is not a box has no IoU (METHOD.md section 3)."""
    x0, y0, x1, y1 = box
    note = f" ({origin}-based)" if origin else ""
    if x1 < x0 or y1 < y0:
        raise BadImageError(
            image_id,
            f"box ({x0}, {y0}, {x1}, {y1}){note} of {image_id} has x1 < x0 or y1 < y0",
            file,
            line,
        )
    inside = min(x0, y0) >= origin
    if width > 0 and height > 0:
        inside = inside and x1 <= width - 1 + origin and y1 <= height - 1 + origin
        bounds = (
            f"the {width}x{height} image (expected {origin} <= x <= {width - 1 + origin}, "
            f"{origin} <= y <= {height - 1 + origin})"
        )
    else:
        inside = inside and max(x1, y1) <= MAX_VALUE
        bounds = f"the image (expected {origin} <= x, y <= {MAX_VALUE})"
    if not inside:
        raise BadImageError(
            image_id,
            f"box ({x0}, {y0}, {x1}, {y1}){note} of {image_id} is outside {bounds}",
            file,
            line,
        )
    return (x0 - origin, y0 - origin, x1 - origin, y1 - origin)


def escapes(name: str) -> bool:
    """True when a relative path would leave its root: absolute, a drive, or a '..' part."""
    normal = name.replace("\\", "/")
    return (
        normal.startswith("/")
        or (len(normal) > 1 and normal[1] == ":")
        or (".." in normal.split("/"))
    )


def check_relative(name: str, where: str) -> None:
    """A configured relative name (a split) that leaves its root stops the run."""
    if escapes(name):
        raise InputError(f"{where}: path {name!r} escapes its root (absolute or '..')")


def escape_error(
    image_id: str, name: str, file: Path, line: int, unit: str = "line"
) -> BadImageError:
    return BadImageError(
        image_id, f"path {name!r} escapes its root (absolute or '..')", file, line, unit
    )


# --------------------------------------------------------------------------- ids across files


def not_listed(image_id: str, path: Path, line: int, ids_file: Path) -> BadImageError:
    """A line of `path` for an id that its split's id list lacks."""
    return BadImageError(image_id, f"image id {image_id!r} is not in {ids_file}", path, line)


def duplicated(image_id: str, path: Path, line: int, first: int) -> BadImageError:
    return BadImageError(
        image_id, f"duplicated image id {image_id!r} (first on line {first})", path, line
    )


def report_missing(
    ids: Mapping[str, int], present: Mapping[str, Any], path: Path, ids_file: Path, bad: BadImages
) -> None:
    """Every listed id without a line in `path` is a bad image, named with its id line."""
    for image_id, line_no in ids.items():
        if image_id not in present:
            bad.report(
                BadImageError(
                    image_id,
                    f"no line for image id {image_id!r} ({ids_file}, line {line_no})",
                    path,
                )
            )


# --------------------------------------------------------------------------- skipped images


def write_skipped(skipped: Iterable[Skipped], path: Path | str) -> None:
    """The skipped images of a split as CSV (image_id, file, line, reason), header always."""
    with atomic_path(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(SKIPPED_COLUMNS)
        for item in skipped:
            writer.writerow(
                [item.image_id, item.file, "" if item.line is None else item.line, item.reason]
            )


def read_skipped(path: Path | str) -> list[Skipped]:
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None or tuple(header) != SKIPPED_COLUMNS:
            raise InputError(f"{path}, line 1: expected header {','.join(SKIPPED_COLUMNS)}")
        return [
            Skipped(image_id, file, int(line) if line else None, reason)
            for image_id, file, line, reason in reader
        ]
