"""Native dataset layouts -> the manifest, one row per image (METHOD.md section 2,
docs/architecture.md "Manifest", docs/datasets.md).

Every adapter reads one split of one layout and returns `ImageRecord`s; `build_split`
dispatches on the dataset's `adapter` key through `ADAPTERS`, so a new layout is one function
and one table entry. Problems confined to one image (a missing or unreadable file, a bad box,
an out-of-range label, an id missing from one metadata file, a duplicated or escaping id) are
`BadImageError` errors: they stop the run, or with `on_bad_image: skip` the image is left out and
listed in the split's skipped table. Problems with a whole file (a malformed line, a missing
metadata file) always stop the run. Every message names the file and line (or `.mat` entry).
"""

from __future__ import annotations

import csv
import importlib
import logging
import os
import pickle
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from rpsloc.errors import InputError
from rpsloc.io import atomic_path

LOGGER = logging.getLogger(__name__)

MANIFEST_COLUMNS = (
    "image_id",
    "path",
    "width",
    "height",
    "label",
    "boxes",
    "mask_paths",
    "ignore_path",
)
SKIPPED_COLUMNS = ("image_id", "file", "line", "reason")
CHECK_IMAGES = ("none", "header", "decode")
ON_BAD_IMAGE = ("error", "skip")


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """One image of a split: where it is, its size, class and ground truth in original pixels.

    `boxes` is a read-only (k, 4) int64 array `x0, y0, x1, y1` (x1, y1 inclusive); `label` is
    0-based, -1 when unknown. Records compare equal when every field is equal (boxes by value).
    """

    image_id: str
    path: Path
    width: int
    height: int
    label: int
    boxes: np.ndarray
    mask_paths: tuple[Path, ...] = ()
    ignore_path: Path | None = None

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

    def _key(self) -> tuple[Any, ...]:
        return (
            self.image_id,
            self.path,
            self.width,
            self.height,
            self.label,
            self.mask_paths,
            self.ignore_path,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageRecord):
            return NotImplemented
        return self._key() == other._key() and np.array_equal(self.boxes, other.boxes)

    def __hash__(self) -> int:
        return hash(self._key())


# --------------------------------------------------------------------------- manifest CSV


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
    paths = [record.path, *record.mask_paths]
    if record.ignore_path is not None:
        paths.append(record.ignore_path)
    for item in paths:
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
            image_id, image_path, width, height, label, boxes, masks, ignore = row
            if not image_id:
                raise InputError(f"{where}: empty image_id")
            if image_id in seen:
                raise InputError(f"{where}: image_id {image_id!r} already on line {seen[image_id]}")
            seen[image_id] = line
            records.append(
                ImageRecord(
                    image_id=image_id,
                    path=Path(image_path),
                    width=_parse_int(width, "width", where, minimum=1),
                    height=_parse_int(height, "height", where, minimum=1),
                    label=_parse_int(label, "label", where, minimum=-1),
                    boxes=_parse_manifest_boxes(boxes, where),
                    mask_paths=tuple(Path(p) for p in masks.split(";")) if masks else (),
                    ignore_path=Path(ignore) if ignore else None,
                )
            )
    return records


def _parse_int(text: str, name: str, where: str, minimum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{where}: expected an integer {name}, found {text!r}") from None
    if minimum is not None and value < minimum:
        raise InputError(f"{where}: expected {name} >= {minimum}, found {value}")
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


# --------------------------------------------------------------------------- bad images


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


@dataclass
class _Candidate:
    """An image as its metadata describes it, before its files and values are checked.

    `boxes` holds the file's own coordinates with where each box was read; `box_origin` is 1
    for datasets whose pixel coordinates start at 1 (they are shifted to 0-based)."""

    image_id: str
    path: Path
    source: tuple[Path, int | None]
    label: int | None = None
    label_source: tuple[Path, int | None] | None = None
    boxes: list[tuple[tuple[int, int, int, int], Path, int | None]] = field(default_factory=list)
    box_origin: int = 0
    size: tuple[int, int] | None = None
    size_source: tuple[Path, int | None] | None = None
    mask_paths: tuple[Path, ...] = ()
    ignore_path: Path | None = None
    unit: str = "line"


def _finish(candidates: Iterable[_Candidate], options: ReadOptions) -> list[ImageRecord]:
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


def _checked_record(candidate: _Candidate, options: ReadOptions) -> ImageRecord:
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


def _check_label(candidate: _Candidate, label: int, num_classes: int | None) -> None:
    file, line = candidate.label_source or candidate.source
    if label < 0:
        raise BadImageError(
            candidate.image_id,
            f"expected a label >= 0 for image {candidate.image_id}, found {label}",
            file,
            line,
            candidate.unit,
        )
    if num_classes is not None and label >= num_classes:
        raise BadImageError(
            candidate.image_id,
            f"expected a label < {num_classes} (0-based) for image {candidate.image_id}, "
            f"found {label}",
            file,
            line,
            candidate.unit,
        )


def _checked_boxes(candidate: _Candidate, width: int, height: int) -> np.ndarray:
    """0-based boxes of one image, each inside the image with x0 <= x1, y0 <= y1."""
    origin = candidate.box_origin
    note = f" ({origin}-based)" if origin else ""
    shifted = []
    for (x0, y0, x1, y1), path, line in candidate.boxes:
        if x1 < x0 or y1 < y0:
            raise BadImageError(
                candidate.image_id,
                f"box ({x0}, {y0}, {x1}, {y1}){note} of {candidate.image_id} has x1 < x0 or "
                f"y1 < y0",
                path,
                line,
            )
        inside = min(x0, y0) >= origin
        if width > 0 and height > 0:
            inside = inside and x1 <= width - 1 + origin and y1 <= height - 1 + origin
        if not inside:
            raise BadImageError(
                candidate.image_id,
                f"box ({x0}, {y0}, {x1}, {y1}){note} of {candidate.image_id} is outside the "
                f"{width}x{height} image (expected {origin} <= x <= {width - 1 + origin}, "
                f"{origin} <= y <= {height - 1 + origin})",
                path,
                line,
            )
        shifted.append((x0 - origin, y0 - origin, x1 - origin, y1 - origin))
    if not shifted:
        return np.zeros((0, 4), dtype=np.int64)
    return np.array(shifted, dtype=np.int64)


def _escapes(name: str) -> bool:
    """True when a relative path would leave its root: absolute, a drive, or a '..' part."""
    normal = name.replace("\\", "/")
    return (
        normal.startswith("/")
        or (len(normal) > 1 and normal[1] == ":")
        or (".." in normal.split("/"))
    )


def _check_relative(name: str, where: str) -> None:
    if _escapes(name):
        raise InputError(f"{where}: path {name!r} escapes its root (absolute or '..')")


def _escape_error(
    image_id: str, name: str, file: Path, line: int, unit: str = "line"
) -> BadImageError:
    return BadImageError(
        image_id, f"path {name!r} escapes its root (absolute or '..')", file, line, unit
    )


# --------------------------------------------------------------------------- WSOL metadata


def wsol_records(
    metadata_dir: Path,
    images: Path,
    mask_root: Path | None = None,
    segmentations: Path | None = None,
    options: ReadOptions | None = None,
) -> list[ImageRecord]:
    """Records of one split in the WSOL benchmark's metadata format (METHOD.md section 2).

    `metadata_dir` holds image_ids.txt, class_labels.txt (`id,label`), image_sizes.txt
    (`id,width,height`) and, optionally, localization.txt (`id,x0,y0,x1,y1`, one line per box;
    or OpenImages' `id,mask_path,ignore_path`, one line per instance) and mask_localization.txt
    (the mask format, for datasets with both boxes and masks). Ids are relative to `images`,
    mask paths to `mask_root` (default `images`). With `segmentations` (CUB segmentation),
    each image's mask is `<segmentations>/<id without extension>.png`.

    Sizes come from image_sizes.txt; when it is missing or empty (OpenImages) they are read
    from the image headers. With `options.check_images` `header` or `decode` a listed size
    that disagrees with the image is a BadImageError. Boxes must lie in [0, width-1] x
    [0, height-1] with x0 <= x1, y0 <= y1, as in every real metadata file.
    """
    options = ReadOptions() if options is None else options
    bad = options.bad
    metadata_dir = Path(metadata_dir)
    image_root = Path(images).absolute()
    mask_root = image_root if mask_root is None else Path(mask_root).absolute()
    if not metadata_dir.is_dir():
        raise InputError(f"{metadata_dir}: metadata folder not found")

    ids_file = metadata_dir / "image_ids.txt"
    id_lines = _parse_image_ids(ids_file, bad)
    labels_file = metadata_dir / "class_labels.txt"
    labels = _parse_keyed(labels_file, id_lines, ids_file, 1, "id,label", bad)
    sizes_file = metadata_dir / "image_sizes.txt"
    sizes = (
        _parse_keyed(sizes_file, id_lines, ids_file, 2, "id,width,height", bad)
        if sizes_file.is_file() and sizes_file.stat().st_size > 0
        else None
    )
    boxes, masks = _parse_localization(metadata_dir / "localization.txt", id_lines, ids_file, bad)
    _, extra_masks = _parse_localization(
        metadata_dir / "mask_localization.txt", id_lines, ids_file, bad, masks_only=True
    )
    if masks and extra_masks:
        raise InputError(
            f"{metadata_dir}: masks listed in both localization.txt and mask_localization.txt"
        )
    masks = masks or extra_masks

    candidates = []
    for image_id, line in id_lines.items():
        if image_id in bad:
            continue
        try:
            candidates.append(
                _wsol_candidate(
                    image_id,
                    line,
                    ids_file,
                    labels_file,
                    labels,
                    sizes,
                    boxes,
                    masks,
                    image_root,
                    mask_root,
                    segmentations,
                )
            )
        except BadImageError as error:
            bad.report(error)
    return _finish(candidates, options)


def _wsol_candidate(
    image_id: str,
    line: int,
    ids_file: Path,
    labels_file: Path,
    labels: Mapping[str, tuple[tuple[int, ...], int]],
    sizes: Mapping[str, tuple[tuple[int, ...], int]] | None,
    boxes: _BoxLines,
    masks: _MaskLines,
    image_root: Path,
    mask_root: Path,
    segmentations: Path | None,
) -> _Candidate:
    (label,), label_line = labels[image_id]
    candidate = _Candidate(
        image_id=image_id,
        path=image_root / image_id,
        source=(ids_file, line),
        label=label,
        label_source=(labels_file, label_line),
        boxes=boxes.get(image_id, []),
    )
    if sizes is not None:
        (width, height), size_line = sizes[image_id]
        if width < 1 or height < 1:
            raise BadImageError(
                image_id,
                f"expected a positive size for {image_id}, found {width}x{height}",
                ids_file.with_name("image_sizes.txt"),
                size_line,
            )
        candidate.size = (width, height)
        candidate.size_source = (ids_file.with_name("image_sizes.txt"), size_line)
    if masks:
        candidate.mask_paths, candidate.ignore_path = _mask_paths(
            masks[image_id], mask_root, image_id
        )
    if segmentations is not None:
        candidate.mask_paths += ((Path(segmentations).absolute() / image_id).with_suffix(".png"),)
    return candidate


def _read_lines(path: Path) -> list[str]:
    """Lines of a metadata file (a final newline is optional, as in the real files)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read ({error})") from error
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _parse_image_ids(path: Path, bad: BadImages, separator: str = ",") -> dict[str, int]:
    """A one-id-per-line file -> {id: line number of its first line}, in file order."""
    ids: dict[str, int] = {}
    for line_no, line in enumerate(_read_lines(path), start=1):
        if not line or separator in line:
            raise InputError(f"{path}, line {line_no}: expected one image id, found {line!r}")
        if line in ids:
            bad.report(
                BadImageError(
                    line,
                    f"duplicated image id {line!r} (first on line {ids[line]})",
                    path,
                    line_no,
                )
            )
            continue
        ids[line] = line_no
        if _escapes(line):
            bad.report(_escape_error(line, line, path, line_no))
    if not ids:
        raise InputError(f"{path}: no image ids")
    return ids


def _parse_keyed(
    path: Path,
    ids: Mapping[str, int],
    ids_file: Path,
    n_values: int,
    layout: str,
    bad: BadImages,
) -> dict[str, tuple[tuple[int, ...], int]]:
    """A one-line-per-id file of integers -> {id: (values, line number)}, covering every id."""
    parsed: dict[str, tuple[tuple[int, ...], int]] = {}
    for line_no, line in enumerate(_read_lines(path), start=1):
        fields = line.split(",")
        if len(fields) != n_values + 1:
            raise InputError(f"{path}, line {line_no}: expected '{layout}', found {line!r}")
        image_id = fields[0]
        try:
            values = tuple(map(int, fields[1:]))
        except ValueError:
            raise InputError(
                f"{path}, line {line_no}: expected integers in '{layout}', found {line!r}"
            ) from None
        if image_id not in ids:
            bad.report(_not_listed(image_id, path, line_no, ids_file))
        elif image_id in parsed:
            bad.report(_duplicated(image_id, path, line_no, parsed[image_id][1]))
        else:
            parsed[image_id] = (values, line_no)
    _report_missing(ids, parsed, path, ids_file, bad)
    return parsed


def _not_listed(image_id: str, path: Path, line: int, ids_file: Path) -> BadImageError:
    return BadImageError(image_id, f"image id {image_id!r} is not in {ids_file}", path, line)


def _duplicated(image_id: str, path: Path, line: int, first: int) -> BadImageError:
    return BadImageError(
        image_id, f"duplicated image id {image_id!r} (first on line {first})", path, line
    )


def _report_missing(
    ids: Mapping[str, int], present: Mapping[str, Any], path: Path, ids_file: Path, bad: BadImages
) -> None:
    for image_id, line_no in ids.items():
        if image_id not in present:
            bad.report(
                BadImageError(
                    image_id,
                    f"no line for image id {image_id!r} ({ids_file}, line {line_no})",
                    path,
                )
            )


_BoxLines = dict[str, list[tuple[tuple[int, int, int, int], Path, int | None]]]
_MaskLines = dict[str, list[tuple[str, str, int, Path]]]


def _parse_localization(
    path: Path, ids: Mapping[str, int], ids_file: Path, bad: BadImages, masks_only: bool = False
) -> tuple[_BoxLines, _MaskLines]:
    """localization.txt (boxes or OpenImages masks, told apart by the first line) -> per-id
    lines. A missing or empty file means no ground truth; otherwise every id must appear."""
    if not path.is_file():
        return {}, {}
    lines = _read_lines(path)
    if not lines:
        return {}, {}
    mask_format = masks_only or lines[0].count(",") == 2
    layout = "id,mask_path,ignore_path" if mask_format else "id,x0,y0,x1,y1"
    n_fields = 3 if mask_format else 5
    boxes: _BoxLines = {}
    masks: _MaskLines = {}
    for line_no, line in enumerate(lines, start=1):
        fields = line.split(",")
        if len(fields) != n_fields:
            raise InputError(f"{path}, line {line_no}: expected '{layout}', found {line!r}")
        image_id = fields[0]
        if mask_format:
            mask, ignore = fields[1], fields[2]
            if not mask:
                raise InputError(f"{path}, line {line_no}: empty mask path for {image_id}")
        else:
            try:
                box = (int(fields[1]), int(fields[2]), int(fields[3]), int(fields[4]))
            except ValueError:
                raise InputError(
                    f"{path}, line {line_no}: expected integers in '{layout}', found {line!r}"
                ) from None
        if image_id not in ids:
            bad.report(_not_listed(image_id, path, line_no, ids_file))
        elif mask_format:
            for name in (mask, ignore):
                if name and _escapes(name):
                    bad.report(_escape_error(image_id, name, path, line_no))
            masks.setdefault(image_id, []).append((mask, ignore, line_no, path))
        else:
            boxes.setdefault(image_id, []).append((box, path, line_no))
    _report_missing(ids, masks if mask_format else boxes, path, ids_file, bad)
    return boxes, masks


def _mask_paths(
    lines: list[tuple[str, str, int, Path]], mask_root: Path, image_id: str
) -> tuple[tuple[Path, ...], Path | None]:
    """Instance mask paths and the (single) ignore mask of one image."""
    masks = tuple(mask_root / mask for mask, _, _, _ in lines)
    ignores = {ignore: (line_no, path) for _, ignore, line_no, path in lines if ignore}
    if len(ignores) > 1:
        (first, _), (second, (line_no, path)) = list(ignores.items())[:2]
        raise BadImageError(
            image_id,
            f"image {image_id} has two ignore masks, {first!r} and {second!r}",
            path,
            line_no,
        )
    ignore = mask_root / next(iter(ignores)) if ignores else None
    return masks, ignore


# --------------------------------------------------------------------------- .mat files


def _load_mat(path: Path, names: Sequence[str]) -> dict[str, Any]:
    """The named variables of a MATLAB file (scipy.io.loadmat, squeezed); errors name the file
    and the missing variable."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        content = scipy.io.loadmat(path, squeeze_me=True)
    except (OSError, ValueError, TypeError, NotImplementedError) as error:
        raise InputError(f"{path}: cannot read as a MATLAB file ({error})") from error
    missing = [name for name in names if name not in content]
    if missing:
        raise InputError(f"{path}: expected the variables {', '.join(names)}; missing {missing}")
    return {name: content[name] for name in names}


def _mat_int(value: Any, path: Path, entry: int, name: str) -> int:
    try:
        number = float(np.asarray(value).item())
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise InputError(f"{path}, entry {entry}: expected an integer {name}, found {value!r}")
    return int(number)


def _mat_str(value: Any, path: Path, entry: int, name: str) -> str:
    text = np.asarray(value).item() if np.asarray(value).size == 1 else value
    if not isinstance(text, str) or not text:
        raise InputError(f"{path}, entry {entry}: expected a file name in {name}, found {value!r}")
    return text


# --------------------------------------------------------------------------- Stanford Cars

CARS_SPLITS = {
    "train": ("cars_train", ("devkit/cars_train_annos.mat",)),
    "test": (
        "cars_test",
        ("cars_test_annos_withlabels.mat", "devkit/cars_test_annos_withlabels.mat"),
    ),
}
CARS_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")


def _cars_annotations(root: Path, split: str) -> Path:
    _, candidates = CARS_SPLITS[split]
    for name in candidates:
        if (root / name).is_file():
            return root / name
    raise InputError(
        f"Stanford Cars split {split!r}: annotation file not found; expected one of "
        f"{', '.join(str(root / name) for name in candidates)}"
    )


def cars_records(root: Path, split: str, options: ReadOptions) -> list[ImageRecord]:
    """Stanford Cars (METHOD.md section 2): `<root>/cars_{train,test}/<fname>`, boxes and
    1-based classes from the devkit's `annotations` struct array. Boxes are taken as 1-based
    pixel coordinates (MATLAB) and shifted to 0-based; sizes come from the image headers."""
    root = Path(root).absolute()
    if split not in CARS_SPLITS:
        raise InputError(f"Stanford Cars has splits train and test, not {split!r}")
    folder, _ = CARS_SPLITS[split]
    path = _cars_annotations(root, split)
    annotations = np.atleast_1d(_load_mat(path, ["annotations"])["annotations"])
    missing = [name for name in CARS_FIELDS if name not in (annotations.dtype.names or ())]
    if missing:
        raise InputError(f"{path}: annotations lack the fields {missing}")
    seen: dict[str, int] = {}
    candidates = []
    for entry, item in enumerate(annotations, start=1):
        fname = _mat_str(item["fname"], path, entry, "fname")
        image_id = f"{folder}/{fname}"
        x0, y0, x1, y1, label = (
            _mat_int(item[name], path, entry, name) for name in CARS_FIELDS[:5]
        )
        if _escapes(fname):
            options.bad.report(_escape_error(image_id, fname, path, entry, "entry"))
        elif image_id in seen:
            options.bad.report(
                BadImageError(
                    image_id,
                    f"duplicated image {fname!r} (first at entry {seen[image_id]})",
                    path,
                    entry,
                    "entry",
                )
            )
        else:
            seen[image_id] = entry
            candidates.append(
                _Candidate(
                    image_id=image_id,
                    path=root / folder / fname,
                    source=(path, entry),
                    label=label - 1,
                    boxes=[((x0, y0, x1, y1), path, entry)],
                    box_origin=1,
                    unit="entry",
                )
            )
    return _finish(candidates, options)


# --------------------------------------------------------------------------- Stanford Dogs


def dogs_records(root: Path, split: str, options: ReadOptions) -> list[ImageRecord]:
    """Stanford Dogs (METHOD.md section 2): `<root>/{split}_list.mat` (`file_list`,
    `annotation_list`, 1-based `labels`), images `<root>/Images/<file>`, VOC-style XML
    `<root>/Annotation/<annotation>` with the size and one `object/bndbox` per dog. Boxes are
    VOC's 1-based pixel coordinates, shifted to 0-based."""
    root = Path(root).absolute()
    if split not in ("train", "test"):
        raise InputError(f"Stanford Dogs has splits train and test, not {split!r}")
    path = root / f"{split}_list.mat"
    lists = _load_mat(path, ["file_list", "annotation_list", "labels"])
    files, annotations, labels = (
        np.atleast_1d(lists[name]) for name in ("file_list", "annotation_list", "labels")
    )
    if not len(files) == len(annotations) == len(labels):
        raise InputError(
            f"{path}: file_list, annotation_list and labels differ in length "
            f"({len(files)}, {len(annotations)}, {len(labels)})"
        )
    seen: dict[str, int] = {}
    candidates = []
    for entry, (file, annotation, label) in enumerate(
        zip(files, annotations, labels, strict=True), start=1
    ):
        image_id = _mat_str(file, path, entry, "file_list")
        annotation = _mat_str(annotation, path, entry, "annotation_list")
        label = _mat_int(label, path, entry, "label")
        try:
            if _escapes(image_id) or _escapes(annotation):
                name = image_id if _escapes(image_id) else annotation
                raise _escape_error(image_id, name, path, entry, "entry")
            if image_id in seen:
                raise BadImageError(
                    image_id,
                    f"duplicated image {image_id!r} (first at entry {seen[image_id]})",
                    path,
                    entry,
                    "entry",
                )
            seen[image_id] = entry
            xml = root / "Annotation" / annotation
            size, boxes = _voc_annotation(xml, image_id)
            candidates.append(
                _Candidate(
                    image_id=image_id,
                    path=root / "Images" / image_id,
                    source=(path, entry),
                    label=label - 1,
                    boxes=boxes,
                    box_origin=1,
                    size=size,
                    size_source=(xml, None),
                    unit="entry",
                )
            )
        except BadImageError as error:
            options.bad.report(error)
    return _finish(candidates, options)


def _voc_annotation(
    path: Path, image_id: str
) -> tuple[tuple[int, int], list[tuple[tuple[int, int, int, int], Path, int | None]]]:
    """(width, height) and the `object/bndbox` boxes (xmin, ymin, xmax, ymax) of a VOC XML."""
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
        except (TypeError, ValueError):
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


# --------------------------------------------------------------------------- FGVC-Aircraft

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
    ids = _parse_image_ids(ids_file, bad, separator=" ")
    boxes_file = data / "images_box.txt"
    boxes: dict[str, tuple[tuple[int, int, int, int], int]] = {}
    for line_no, line in enumerate(_read_lines(boxes_file), start=1):
        fields = line.split()
        try:
            box = tuple(int(v) for v in fields[1:])
        except ValueError:
            box = ()
        if len(fields) != 5 or len(box) != 4:
            raise InputError(
                f"{boxes_file}, line {line_no}: expected 'id x0 y0 x1 y1', found {line!r}"
            )
        if fields[0] not in ids:
            continue  # the file lists the images of every split
        if fields[0] in boxes:
            bad.report(_duplicated(fields[0], boxes_file, line_no, boxes[fields[0]][1]))
        else:
            boxes[fields[0]] = (box, line_no)  # type: ignore[assignment]
    _report_missing(ids, boxes, boxes_file, ids_file, bad)
    labels = _aircraft_labels(data, split, ids, ids_file, bad)
    candidates = []
    for image_id, line in ids.items():
        if image_id in bad:
            continue
        box, box_line = boxes[image_id]
        label, label_line = labels.get(image_id, (None, None))
        candidates.append(
            _Candidate(
                image_id=image_id,
                path=data / "images" / f"{image_id}.jpg",
                source=(ids_file, line),
                label=label,
                label_source=(data / f"images_variant_{split}.txt", label_line),
                boxes=[(box, boxes_file, box_line)],
                box_origin=1,
            )
        )
    return _finish(candidates, options)


def _aircraft_labels(
    data: Path, split: str, ids: Mapping[str, int], ids_file: Path, bad: BadImages
) -> dict[str, tuple[int, int]]:
    """{id: (0-based variant index, line)} from images_variant_<split>.txt, or {} without it."""
    path = data / f"images_variant_{split}.txt"
    if not path.is_file():
        return {}
    variants_file = data / "variants.txt"
    if variants_file.is_file():
        names = [name for name in _read_lines(variants_file) if name]
    else:  # the sorted variants of every split's variant file
        names = sorted(
            {
                line.split(" ", 1)[1]
                for other in sorted(data.glob("images_variant_*.txt"))
                for line in _read_lines(other)
                if " " in line
            }
        )
    index = {name: position for position, name in enumerate(names)}
    labels: dict[str, tuple[int, int]] = {}
    for line_no, line in enumerate(_read_lines(path), start=1):
        image_id, _, name = line.partition(" ")
        if not name:
            raise InputError(f"{path}, line {line_no}: expected 'id variant', found {line!r}")
        if image_id not in ids:
            bad.report(_not_listed(image_id, path, line_no, ids_file))
        elif image_id in labels:
            bad.report(_duplicated(image_id, path, line_no, labels[image_id][1]))
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
    _report_missing(ids, labels, path, ids_file, bad)
    return labels


# --------------------------------------------------------------------------- CIFAR


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its training batches and labels."""

    batches: tuple[str, ...]
    label_key: str
    num_classes: int


CIFAR = {
    "cifar10": CifarLayout(tuple(f"data_batch_{k}" for k in range(1, 6)), "labels", 10),
    "cifar100": CifarLayout(("train",), "fine_labels", 100),
    "cifar100_coarse": CifarLayout(("train",), "coarse_labels", 20),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings and numpy arrays only: a CIFAR batch needs nothing
    else, and a file that asks for any other global is refused, never executed."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in protocol 2
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}")
        if module.startswith("numpy.core."):  # numpy 1 pickles; numpy 2 keeps them in _core
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return getattr(importlib.import_module(module), name)


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,)) of one CIFAR python batch, read with a
    restricted unpickler (numpy arrays only)."""
    try:
        with path.open("rb") as stream:
            batch = _ArrayUnpickler(stream, encoding="bytes").load()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise InputError(f"{path}: cannot read as a CIFAR batch ({error})") from error
    if not isinstance(batch, dict):
        raise InputError(f"{path}: expected a pickled dict, found {type(batch).__name__}")
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    for key in ("data", label_key):
        if key not in batch:
            raise InputError(f"{path}: key {key!r} not found (keys: {sorted(batch)})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise InputError(
            f"{path}: expected data of shape (N, 3072) uint8, found {data.shape} {data.dtype}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{path}: expected {len(data)} integer {label_key}, found {labels.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.int64)


def cifar_records(
    root: Path, split: str, layout: CifarLayout, options: ReadOptions
) -> list[ImageRecord]:
    """CIFAR-10/100 (METHOD.md section 2, a base dataset for w*): the training batches under
    `root` (`cifar-10-batches-py` or `cifar-100-python`). The batches hold pixels, not files, so
    every image is written as `<work_dir>/images/train/<index:05d>.png` (index in batch order,
    the same bytes on every run); ids are `train/<index:05d>.png`. No boxes."""
    if split != "train":
        raise InputError(f"CIFAR is used as a base dataset: only split 'train', not {split!r}")
    if options.work_dir is None:
        raise InputError("CIFAR: a work folder is needed to write the images as PNG files")
    root = Path(root).absolute()
    folder = Path(options.work_dir).absolute() / "images" / split
    folder.mkdir(parents=True, exist_ok=True)
    candidates = []
    index = 0
    for name in layout.batches:
        images, labels = read_cifar_batch(root / name, layout.label_key)
        for entry, (pixels, label) in enumerate(zip(images, labels, strict=True), start=1):
            image_id = f"{split}/{index:05d}.png"
            path = folder / f"{index:05d}.png"
            index += 1
            Image.fromarray(pixels).save(path, format="PNG")
            candidates.append(
                _Candidate(
                    image_id=image_id,
                    path=path,
                    source=(root / name, entry),
                    label=int(label),
                    size=(32, 32),
                    unit="entry",
                )
            )
    return _finish(candidates, options)


# --------------------------------------------------------------------------- bring your own

CSV_COLUMNS = ("split", "image_path", "label", "x0", "y0", "x1", "y1")


def csv_records(
    table: Path, root: Path | None, split: str, options: ReadOptions
) -> list[ImageRecord]:
    """A dataset described by one CSV file (docs/datasets.md, "Bring your own"): the columns
    `split,image_path,label,x0,y0,x1,y1`, one line per box (an image with several boxes has
    several lines with the same split, path and label; an image without boxes one line with the
    four box fields empty). Paths are relative to `root` (default: the CSV's folder); labels
    are 0-based integers, or empty when unknown (-1); boxes are 0-based inclusive pixel
    coordinates, as in the WSOL metadata. Sizes come from the image headers."""
    table = Path(table)
    root = (table.parent if root is None else Path(root)).absolute()
    try:
        stream = table.open(newline="", encoding="utf-8-sig")  # a spreadsheet's BOM is fine
    except OSError as error:
        raise InputError(f"{table}: cannot open ({error})") from error
    bad = options.bad
    candidates: dict[str, _Candidate] = {}
    splits: dict[str, tuple[str, int]] = {}
    boxless: set[str] = set()
    with stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
            raise InputError(
                f"{table}, line 1: expected the header {','.join(CSV_COLUMNS)}, found "
                f"{'nothing' if header is None else ','.join(header)}"
            )
        for row in reader:
            line = reader.line_num
            if not row:
                continue  # a blank line
            if len(row) != len(CSV_COLUMNS):
                raise InputError(
                    f"{table}, line {line}: expected {len(CSV_COLUMNS)} fields, found {len(row)}"
                )
            row_split, image_id, label_text, *box_text = (value.strip() for value in row)
            label = _csv_int(label_text, "label", table, line) if label_text else None
            box = tuple(_csv_int(v, "box coordinate", table, line) for v in box_text if v)
            if len(box) not in (0, 4):
                raise InputError(f"{table}, line {line}: expected all four box fields or none")
            if not image_id:
                raise InputError(f"{table}, line {line}: empty image_path")
            first_split, first_line = splits.setdefault(image_id, (row_split, line))
            if row_split != split and first_split != split:
                continue
            try:
                if first_split != row_split:
                    raise BadImageError(
                        image_id,
                        f"image {image_id} is in split {first_split!r} on line "
                        f"{first_line} and in split {row_split!r}",
                        table,
                        line,
                    )
                if _escapes(image_id):
                    raise _escape_error(image_id, image_id, table, line)
                candidate = candidates.setdefault(
                    image_id,
                    _Candidate(image_id, root / image_id, (table, line), label, (table, line)),
                )
                if candidate.label != label:
                    raise BadImageError(
                        image_id,
                        f"label {label_text or 'empty'} of {image_id} differs from "
                        f"line {candidate.source[1]}",
                        table,
                        line,
                    )
                if image_id in boxless or (not box and candidate.boxes):
                    raise BadImageError(
                        image_id,
                        f"image {image_id} has a line without a box and other lines (first on "
                        f"line {candidate.source[1]})",
                        table,
                        line,
                    )
                if box:
                    candidate.boxes.append((box, table, line))  # type: ignore[arg-type]
                else:
                    boxless.add(image_id)
            except BadImageError as error:
                bad.report(error)
    found = [c for c in candidates.values() if splits[c.image_id][0] == split]
    return _finish(found, options)


def _csv_int(text: str, name: str, table: Path, line: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(
            f"{table}, line {line}: expected an integer {name}, found {text!r}"
        ) from None


# --------------------------------------------------------------------------- adapters


def _config_path(dataset: Mapping[str, Any], key: str) -> Path:
    if key not in dataset or dataset[key] in (None, ""):
        name = dataset.get("name", "dataset")
        raise InputError(f"{name}: configuration key {key!r} is missing")
    return Path(dataset[key]).expanduser()


def _split_folder(root: Path, split: str) -> Path:
    _check_relative(split, f"split {split!r}")
    folder = root / split
    if not folder.is_dir():
        raise InputError(f"split {split!r}: metadata folder {folder} not found")
    return folder


def _optional_path(dataset: Mapping[str, Any], key: str) -> Path | None:
    return _config_path(dataset, key) if dataset.get(key) else None


def _cub_images(root: Path) -> Path:
    """CUB_200_2011 keeps the class folders in `images/`; the benchmark's copy has them at
    the top."""
    return root / "images" if (root / "images").is_dir() else root


Reader = Callable[[Mapping[str, Any], str, ReadOptions], list[ImageRecord]]
Sources = Callable[[Mapping[str, Any], str], list[Path]]


def _metadata_sources(dataset: Mapping[str, Any], split: str) -> list[Path]:
    return sorted((_config_path(dataset, "metadata") / split).glob("*.txt"))


def _files(*names: str) -> Sources:
    """Sources: files under the dataset root, `{split}` replaced by the split's name."""

    def sources(dataset: Mapping[str, Any], split: str) -> list[Path]:
        root = _config_path(dataset, "root")
        return [root / name.format(split=split) for name in names]

    return sources


@dataclass(frozen=True)
class Adapter:
    """One native layout: its reader, its configuration keys, its defaults (METHOD.md 1)."""

    read: Reader
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    image_size: int = 256
    crop_size: int = 224
    output_stride: int = 16
    threshold_split: str | None = None
    num_classes: int | None = None
    splits: tuple[str, ...] | None = None
    sources: Sources = lambda dataset, split: []


FINE_GRAINED = {"image_size": 480, "crop_size": 448, "output_stride": 32}


def _cifar_adapter(kind: str) -> Adapter:
    layout = CIFAR[kind]
    return Adapter(
        read=lambda d, split, o: cifar_records(_config_path(d, "root"), split, layout, o),
        required=("root",),
        image_size=224,
        crop_size=224,
        num_classes=layout.num_classes,
        splits=("train",),
        sources=_files(*layout.batches),
    )


ADAPTERS: dict[str, Adapter] = {
    "wsol": Adapter(
        read=lambda d, split, o: wsol_records(
            images=_config_path(d, "images"),
            metadata_dir=_split_folder(_config_path(d, "metadata"), split),
            mask_root=_optional_path(d, "masks"),
            options=o,
        ),
        required=("metadata", "images"),
        optional=("masks",),
        sources=_metadata_sources,
    ),
    "synthetic": Adapter(
        read=lambda d, split, o: wsol_records(
            _split_folder(_config_path(d, "root") / "metadata", split),
            _config_path(d, "root") / "images",
            _config_path(d, "root") / "masks",
            options=o,
        ),
        required=("synthetic",),
        image_size=224,
        crop_size=224,
    ),
    "cub": Adapter(
        read=lambda d, split, o: wsol_records(
            _split_folder(_config_path(d, "metadata"), split),
            _cub_images(_config_path(d, "root")),
            segmentations=_optional_path(d, "segmentations"),
            options=o,
        ),
        required=("root", "metadata"),
        optional=("segmentations",),
        threshold_split="val",
        num_classes=200,
        sources=_metadata_sources,
        **FINE_GRAINED,
    ),
    "ilsvrc": Adapter(
        read=lambda d, split, o: wsol_records(
            _split_folder(_config_path(d, "metadata"), split), _config_path(d, "root"), options=o
        ),
        required=("root", "metadata"),
        threshold_split="val",
        num_classes=1000,
        sources=_metadata_sources,
    ),
    "openimages": Adapter(
        read=lambda d, split, o: wsol_records(
            _split_folder(_config_path(d, "metadata"), split),
            _config_path(d, "root"),
            _optional_path(d, "masks"),
            options=o,
        ),
        required=("root", "metadata"),
        optional=("masks",),
        num_classes=100,
        sources=_metadata_sources,
    ),
    "cars": Adapter(
        read=lambda d, split, o: cars_records(_config_path(d, "root"), split, o),
        required=("root",),
        num_classes=196,
        splits=tuple(CARS_SPLITS),
        sources=lambda d, split: [_cars_annotations(_config_path(d, "root"), split)],
        **FINE_GRAINED,
    ),
    "dogs": Adapter(
        read=lambda d, split, o: dogs_records(_config_path(d, "root"), split, o),
        required=("root",),
        num_classes=120,
        splits=("train", "test"),
        sources=_files("{split}_list.mat"),
        **FINE_GRAINED,
    ),
    "aircraft": Adapter(
        read=lambda d, split, o: aircraft_records(_config_path(d, "root"), split, o),
        required=("root",),
        num_classes=100,
        splits=AIRCRAFT_SPLITS,
        sources=_files(
            "data/images_{split}.txt",
            "data/images_box.txt",
            "data/images_variant_{split}.txt",
            "data/variants.txt",
        ),
        **FINE_GRAINED,
    ),
    **{kind: _cifar_adapter(kind) for kind in CIFAR},
    "csv": Adapter(
        read=lambda d, split, o: csv_records(
            _config_path(d, "csv"), _optional_path(d, "root"), split, o
        ),
        required=("csv",),
        optional=("root",),
        sources=lambda d, split: [_config_path(d, "csv")],
    ),
}

#: Dataset keys every adapter understands (docs/datasets.md).
COMMON_KEYS = ("on_bad_image", "check_images", "num_classes")


def adapter_of(dataset: Mapping[str, Any]) -> Adapter:
    name = dataset.get("adapter")
    if name not in ADAPTERS:
        raise InputError(
            f"{dataset.get('name', 'dataset')}: unknown adapter {name!r}; expected one of "
            f"{', '.join(sorted(ADAPTERS))}"
        )
    return ADAPTERS[name]


def dataset_settings(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset's configuration with its adapter's defaults filled in: image_size,
    crop_size, output_stride (METHOD.md section 1) and threshold_split (val for CUB and
    ImageNet, when val is evaluated, as the authors do)."""
    adapter = adapter_of(dataset)
    settings = dict(dataset)
    settings.setdefault("image_size", adapter.image_size)
    settings.setdefault("crop_size", adapter.crop_size)
    settings.setdefault("output_stride", adapter.output_stride)
    if adapter.threshold_split in settings.get("eval_splits", ()):
        settings.setdefault("threshold_split", adapter.threshold_split)
    return settings


def check_dataset(name: str, dataset: Mapping[str, Any]) -> None:
    """The adapter's required keys are present and its splits exist (errors name the key)."""
    adapter = adapter_of(dataset)
    for key in adapter.required:
        if key not in dataset:
            raise InputError(
                f"config: datasets.{name}.{key} is required by adapter '{dataset['adapter']}'"
            )
    if adapter.splits is not None:
        for split in [dataset["train_split"], *dataset.get("eval_splits", ())]:
            if split not in adapter.splits:
                raise InputError(
                    f"config: datasets.{name}: adapter '{dataset['adapter']}' has the splits "
                    f"{list(adapter.splits)}, not {split!r}"
                )


def manifest_settings(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """Only the keys that decide a manifest, so changing e.g. the output stride keeps it."""
    adapter = adapter_of(dataset)
    keys = ("adapter", *adapter.required, *adapter.optional, *COMMON_KEYS)
    return {key: dataset[key] for key in keys if key in dataset}


def source_files(dataset: Mapping[str, Any], split: str) -> list[str]:
    """The metadata files a split's manifest is read from (those that exist), so an edit to
    one rebuilds the manifest. Images and per-image XML files are not listed."""
    return [str(path) for path in adapter_of(dataset).sources(dataset, split) if path.is_file()]


@dataclass(frozen=True)
class SplitManifest:
    """One split's records and the images left out under `on_bad_image: skip`."""

    records: list[ImageRecord]
    skipped: list[Skipped]


def build_split(
    dataset: Mapping[str, Any], split: str, work_dir: Path | str | None = None
) -> SplitManifest:
    """Records of one split of a configured dataset, dispatched on `dataset["adapter"]`.

    `on_bad_image` (`error`, default, or `skip`) decides what a problem with one image does;
    `check_images` (`none`, `header` default, `decode`) how much of each image is read;
    `num_classes` bounds the labels (default per adapter). `work_dir` is where adapters that
    must write images (CIFAR) write them (`results/<dataset>` in the workflow).
    """
    adapter = adapter_of(dataset)
    on_bad_image = dataset.get("on_bad_image", "error")
    if on_bad_image not in ON_BAD_IMAGE:
        raise InputError(
            f"on_bad_image: expected one of {', '.join(ON_BAD_IMAGE)}, found {on_bad_image!r}"
        )
    options = ReadOptions(
        check_images=dataset.get("check_images", "header"),
        num_classes=dataset.get("num_classes", adapter.num_classes),
        bad=BadImages(skip=on_bad_image == "skip"),
        work_dir=None if work_dir is None else Path(work_dir),
    )
    records = adapter.read(dataset, split, options)
    skipped = options.bad.skipped
    if not records:
        raise InputError(
            f"{dataset.get('name', 'dataset')}: split {split!r} has no usable image "
            f"({len(skipped)} skipped; first: {skipped[0].reason if skipped else 'none'})"
        )
    if skipped:
        LOGGER.warning(
            "split %s: %d image(s) skipped, e.g. %s", split, len(skipped), skipped[0].reason
        )
    return SplitManifest(records, skipped)


def build_manifest(dataset: Mapping[str, Any], split: str) -> list[ImageRecord]:
    """The records of `build_split`; skipped images are logged (use `build_split` for them)."""
    return build_split(dataset, split).records


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


def gather_skipped(by_split: Mapping[str, Path | str], out: Path | str) -> dict[str, int]:
    """Join the splits' skipped tables into one CSV (split first); the count per split."""
    counts = {}
    with atomic_path(out) as temporary, temporary.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(("split", *SKIPPED_COLUMNS))
        for split, path in by_split.items():
            items = read_skipped(path)
            counts[split] = len(items)
            for item in items:
                writer.writerow(
                    [
                        split,
                        item.image_id,
                        item.file,
                        "" if item.line is None else item.line,
                        item.reason,
                    ]
                )
    return counts
