"""Native dataset layouts -> the manifest, one row per image (METHOD.md section 2,
docs/architecture.md "Manifest").

Every adapter returns a list of `ImageRecord`s; `build_manifest` dispatches on the dataset's
`adapter` key through `ADAPTERS`, so a new layout is one function and one dict entry.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rpsloc.errors import InputError
from rpsloc.io import atomic_path

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


# --------------------------------------------------------------------------- WSOL metadata


def wsol_records(
    metadata_dir: Path,
    image_root: Path,
    mask_root: Path | None = None,
    read_sizes_from_images: bool = False,
    *,
    check_files: bool = True,
) -> list[ImageRecord]:
    """Records of one split in the WSOL benchmark's metadata format (METHOD.md section 2).

    `metadata_dir` holds image_ids.txt, class_labels.txt (`id,label`), image_sizes.txt
    (`id,width,height`) and, optionally, localization.txt (`id,x0,y0,x1,y1`, one line per box;
    or OpenImages' `id,mask_path,ignore_path`, one line per instance) and mask_localization.txt
    (the mask format, for datasets with both boxes and masks). Ids are relative to `image_root`,
    mask paths to `mask_root` (default `image_root`).

    Sizes come from image_sizes.txt; only when it is missing or empty (OpenImages), or when
    `read_sizes_from_images` is set, are they read from the image headers (no decoding); a
    header that disagrees with image_sizes.txt is then an error. Boxes must lie in
    [0, width-1] x [0, height-1] with x0 <= x1, y0 <= y1, as in every real metadata file.

    `check_files=False` skips the existence check of images and masks (to inspect metadata
    without the images); sizes that would come from absent images are then recorded as 0.
    Every inconsistency raises InputError naming the file and line.
    """
    metadata_dir = Path(metadata_dir)
    image_root = Path(image_root).absolute()
    mask_root = image_root if mask_root is None else Path(mask_root).absolute()
    if not metadata_dir.is_dir():
        raise InputError(f"{metadata_dir}: metadata folder not found")

    ids_file = metadata_dir / "image_ids.txt"
    id_lines = _parse_image_ids(ids_file)
    labels = _parse_keyed(metadata_dir / "class_labels.txt", id_lines, ids_file, 1, "id,label")
    sizes_file = metadata_dir / "image_sizes.txt"
    listed_sizes = (
        _parse_keyed(sizes_file, id_lines, ids_file, 2, "id,width,height")
        if sizes_file.is_file() and sizes_file.stat().st_size > 0
        else None
    )
    boxes, masks = _parse_localization(metadata_dir / "localization.txt", id_lines, ids_file)
    _, extra_masks = _parse_localization(
        metadata_dir / "mask_localization.txt", id_lines, ids_file, masks_only=True
    )
    if masks and extra_masks:
        raise InputError(
            f"{metadata_dir}: masks listed in both localization.txt and mask_localization.txt"
        )
    masks = masks or extra_masks

    paths = {image_id: image_root / image_id for image_id in id_lines}
    if check_files:
        for image_id, line in id_lines.items():
            if not os.path.exists(paths[image_id]):
                raise InputError(
                    f"image {image_id} ({ids_file}, line {line}): file not found: {paths[image_id]}"
                )

    sizes = _resolve_sizes(
        id_lines, paths, listed_sizes, sizes_file, read_sizes_from_images or listed_sizes is None
    )
    labels_file = metadata_dir / "class_labels.txt"
    records = []
    for image_id in id_lines:
        (label,), _ = labels[image_id]
        if label < 0:
            raise InputError(
                f"{labels_file}, line {labels[image_id][1]}: expected a label >= 0 for "
                f"image {image_id}, found {label}"
            )
        width, height = sizes[image_id]
        image_boxes = _checked_boxes(boxes[image_id], image_id, width, height) if boxes else None
        instance_masks, ignore = (
            _mask_paths(masks[image_id], mask_root, image_id) if masks else ((), None)
        )
        records.append(
            ImageRecord(
                image_id=image_id,
                path=paths[image_id],
                width=width,
                height=height,
                label=label,
                boxes=_NO_BOXES if image_boxes is None else image_boxes,
                mask_paths=instance_masks,
                ignore_path=ignore,
            )
        )
    if check_files:
        _check_mask_files(records)
    return records


_NO_BOXES = np.zeros((0, 4), dtype=np.int64)


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


def _check_relative(name: str, where: str) -> None:
    """An id or mask path must stay inside its root: not absolute, no '..' component."""
    normal = name.replace("\\", "/")
    if (
        normal.startswith("/")
        or (len(normal) > 1 and normal[1] == ":")
        or (".." in normal and ".." in normal.split("/"))
    ):
        raise InputError(f"{where}: path {name!r} escapes its root (absolute or '..')")


def _parse_image_ids(path: Path) -> dict[str, int]:
    """image_ids.txt -> {id: line number}, in file order."""
    ids: dict[str, int] = {}
    for line_no, line in enumerate(_read_lines(path), start=1):
        if not line or "," in line:
            raise InputError(f"{path}, line {line_no}: expected one image id, found {line!r}")
        if line in ids:
            raise InputError(
                f"{path}, line {line_no}: duplicated image id {line!r} (first on line {ids[line]})"
            )
        _check_relative(line, f"{path}, line {line_no}")
        ids[line] = line_no
    if not ids:
        raise InputError(f"{path}: no image ids")
    return ids


def _parse_keyed(
    path: Path, ids: Mapping[str, int], ids_file: Path, n_values: int, layout: str
) -> dict[str, tuple[tuple[int, ...], int]]:
    """A one-line-per-id file of integers -> {id: (values, line number)}, covering every id."""
    parsed: dict[str, tuple[tuple[int, ...], int]] = {}
    for line_no, line in enumerate(_read_lines(path), start=1):
        fields = line.split(",")
        if len(fields) != n_values + 1:
            raise InputError(f"{path}, line {line_no}: expected '{layout}', found {line!r}")
        image_id = fields[0]
        if image_id not in ids:
            raise InputError(f"{path}, line {line_no}: image id {image_id!r} is not in {ids_file}")
        if image_id in parsed:
            raise InputError(
                f"{path}, line {line_no}: duplicated image id {image_id!r} (first on line "
                f"{parsed[image_id][1]})"
            )
        try:
            values = tuple(map(int, fields[1:]))
        except ValueError:
            raise InputError(
                f"{path}, line {line_no}: expected integers in '{layout}', found {line!r}"
            ) from None
        parsed[image_id] = (values, line_no)
    if len(parsed) != len(ids):
        _report_missing(ids, parsed, path, ids_file)
    return parsed


def _report_missing(
    ids: Mapping[str, int], present: Mapping[str, Any], path: Path, ids_file: Path
) -> None:
    for image_id, line_no in ids.items():
        if image_id not in present:
            raise InputError(
                f"{path}: no line for image id {image_id!r} ({ids_file}, line {line_no})"
            )


_BoxLines = dict[str, list[tuple[tuple[int, int, int, int], int, Path]]]
_MaskLines = dict[str, list[tuple[str, str, int, Path]]]


def _parse_localization(
    path: Path, ids: Mapping[str, int], ids_file: Path, masks_only: bool = False
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
        if image_id not in ids:
            raise InputError(f"{path}, line {line_no}: image id {image_id!r} is not in {ids_file}")
        if mask_format:
            mask, ignore = fields[1], fields[2]
            if not mask:
                raise InputError(f"{path}, line {line_no}: empty mask path for {image_id}")
            _check_relative(mask, f"{path}, line {line_no}")
            if ignore:
                _check_relative(ignore, f"{path}, line {line_no}")
            masks.setdefault(image_id, []).append((mask, ignore, line_no, path))
        else:
            try:
                box = (int(fields[1]), int(fields[2]), int(fields[3]), int(fields[4]))
            except ValueError:
                raise InputError(
                    f"{path}, line {line_no}: expected integers in '{layout}', found {line!r}"
                ) from None
            boxes.setdefault(image_id, []).append((box, line_no, path))
    found = masks if mask_format else boxes
    if len(found) != len(ids):
        _report_missing(ids, found, path, ids_file)
    return boxes, masks


def _resolve_sizes(
    ids: Mapping[str, int],
    paths: Mapping[str, Path],
    listed: Mapping[str, tuple[tuple[int, ...], int]] | None,
    sizes_file: Path,
    from_headers: bool,
) -> dict[str, tuple[int, int]]:
    """(width, height) per id: from image_sizes.txt, or from image headers when asked."""
    sizes: dict[str, tuple[int, int]] = {}
    for image_id in ids:
        if listed is not None:
            (width, height), line_no = listed[image_id]
            if width < 1 or height < 1:
                raise InputError(
                    f"{sizes_file}, line {line_no}: expected a positive size for {image_id}, "
                    f"found {width}x{height}"
                )
            sizes[image_id] = (width, height)
        if not from_headers:
            continue
        path = paths[image_id]
        if not os.path.exists(path):
            if listed is None:
                sizes[image_id] = (0, 0)  # only reachable with check_files=False
            continue
        header = _header_size(path, image_id)
        if listed is not None and header != sizes[image_id]:
            raise InputError(
                f"{sizes_file}, line {listed[image_id][1]}: size of {image_id} is "
                f"{sizes[image_id][0]}x{sizes[image_id][1]}, but the image {path} is "
                f"{header[0]}x{header[1]}"
            )
        sizes[image_id] = header
    return sizes


def _header_size(path: Path, image_id: str) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"image {image_id}: cannot read the header of {path} ({error})") from error


def _checked_boxes(
    lines: list[tuple[tuple[int, int, int, int], int, Path]], image_id: str, width: int, height: int
) -> np.ndarray:
    """Boxes of one image, each checked to lie inside the image with x0 <= x1, y0 <= y1."""
    for (x0, y0, x1, y1), line_no, path in lines:
        if x1 < x0 or y1 < y0:
            raise InputError(
                f"{path}, line {line_no}: box ({x0}, {y0}, {x1}, {y1}) of {image_id} has "
                f"x1 < x0 or y1 < y0"
            )
        inside = x0 >= 0 and y0 >= 0
        if width > 0 and height > 0:
            inside = inside and x1 <= width - 1 and y1 <= height - 1
        if not inside:
            raise InputError(
                f"{path}, line {line_no}: box ({x0}, {y0}, {x1}, {y1}) of {image_id} is "
                f"outside the {width}x{height} image (expected 0 <= x <= {width - 1}, "
                f"0 <= y <= {height - 1})"
            )
    if not lines:
        return np.zeros((0, 4), dtype=np.int64)
    return np.array([box for box, _, _ in lines], dtype=np.int64)


def _mask_paths(
    lines: list[tuple[str, str, int, Path]], mask_root: Path, image_id: str
) -> tuple[tuple[Path, ...], Path | None]:
    """Instance mask paths and the (single) ignore mask of one image."""
    masks = tuple(mask_root / mask for mask, _, _, _ in lines)
    ignores = {ignore: (line_no, path) for _, ignore, line_no, path in lines if ignore}
    if len(ignores) > 1:
        (first, _), (second, (line_no, path)) = list(ignores.items())[:2]
        raise InputError(
            f"{path}, line {line_no}: image {image_id} has two ignore masks, {first!r} and "
            f"{second!r}"
        )
    ignore = mask_root / next(iter(ignores)) if ignores else None
    return masks, ignore


def _check_mask_files(records: Iterable[ImageRecord]) -> None:
    for record in records:
        for mask in (*record.mask_paths, record.ignore_path):
            if mask is not None and not os.path.exists(mask):
                raise InputError(f"image {record.image_id}: mask file not found: {mask}")


def check_files_exist(records: Iterable[ImageRecord]) -> None:
    """Raise InputError naming the image id and path of the first missing image or mask."""
    records = list(records)
    for record in records:
        if not os.path.exists(record.path):
            raise InputError(f"image {record.image_id}: file not found: {record.path}")
    _check_mask_files(records)


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


def wsol_adapter(dataset: Mapping[str, Any], split: str) -> list[ImageRecord]:
    """`adapter: wsol`: `metadata` (one subfolder per split), `images`, optional `masks`."""
    metadata = _config_path(dataset, "metadata")
    images = _config_path(dataset, "images")
    masks = _config_path(dataset, "masks") if dataset.get("masks") else None
    return wsol_records(_split_folder(metadata, split), images, masks)


def synthetic_adapter(dataset: Mapping[str, Any], split: str) -> list[ImageRecord]:
    """`adapter: synthetic`: the layout `synthetic.generate_synthetic_dataset` writes under
    `root` (root/metadata/<split>/, root/images/, root/masks/)."""
    root = _config_path(dataset, "root")
    return wsol_records(_split_folder(root / "metadata", split), root / "images", root / "masks")


ADAPTERS: dict[str, Callable[[Mapping[str, Any], str], list[ImageRecord]]] = {
    "wsol": wsol_adapter,
    "synthetic": synthetic_adapter,
}


def build_manifest(dataset: Mapping[str, Any], split: str) -> list[ImageRecord]:
    """Records of one split of a configured dataset, dispatched on `dataset["adapter"]`.
    Missing image files are an error naming the image id and path."""
    adapter = dataset.get("adapter")
    if adapter not in ADAPTERS:
        name = dataset.get("name", "dataset")
        raise InputError(
            f"{name}: unknown adapter {adapter!r}; expected one of {', '.join(sorted(ADAPTERS))}"
        )
    records = ADAPTERS[adapter](dataset, split)
    check_files_exist(records)
    return records
