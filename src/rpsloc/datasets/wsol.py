"""The WSOL benchmark's metadata format (METHOD.md section 2): image_ids.txt, class_labels.txt,
image_sizes.txt and localization.txt (boxes, or OpenImages' masks) per split folder, read for
the wsol, synthetic, cub, ilsvrc and openimages adapters."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rpsloc.datasets.policy import (
    BadImageError,
    BadImages,
    BoxLine,
    Candidate,
    ReadOptions,
    duplicated,
    escape_error,
    escapes,
    finish,
    not_listed,
    report_missing,
)
from rpsloc.datasets.records import ImageRecord
from rpsloc.errors import InputError

_BoxLines = dict[str, list[BoxLine]]
_MaskLines = dict[str, list[tuple[str, str, int, Path]]]


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
    id_lines = read_image_ids(ids_file, bad)
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
    return finish(candidates, options)


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
) -> Candidate:
    (label,), label_line = labels[image_id]
    candidate = Candidate(
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


def read_lines(path: Path) -> list[str]:
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


def read_image_ids(path: Path, bad: BadImages, separator: str = ",") -> dict[str, int]:
    """A one-id-per-line file -> {id: line number of its first line}, in file order."""
    ids: dict[str, int] = {}
    for line_no, line in enumerate(read_lines(path), start=1):
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
        if escapes(line):
            bad.report(escape_error(line, line, path, line_no))
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
    for line_no, line in enumerate(read_lines(path), start=1):
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
            bad.report(not_listed(image_id, path, line_no, ids_file))
        elif image_id in parsed:
            bad.report(duplicated(image_id, path, line_no, parsed[image_id][1]))
        else:
            parsed[image_id] = (values, line_no)
    report_missing(ids, parsed, path, ids_file, bad)
    return parsed


def _parse_localization(
    path: Path, ids: Mapping[str, int], ids_file: Path, bad: BadImages, masks_only: bool = False
) -> tuple[_BoxLines, _MaskLines]:
    """localization.txt (boxes or OpenImages masks, told apart by the first line) -> per-id
    lines. A missing or empty file means no ground truth; otherwise every id must appear."""
    if not path.is_file():
        return {}, {}
    lines = read_lines(path)
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
            bad.report(not_listed(image_id, path, line_no, ids_file))
        elif mask_format:
            for name in (mask, ignore):
                if name and escapes(name):
                    bad.report(escape_error(image_id, name, path, line_no))
            masks.setdefault(image_id, []).append((mask, ignore, line_no, path))
        else:
            boxes.setdefault(image_id, []).append((box, path, line_no))
    report_missing(ids, masks if mask_format else boxes, path, ids_file, bad)
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
