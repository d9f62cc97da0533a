"""The WSOL benchmark's metadata format (METHOD.md section 2), read in one place.

A split's folder holds image_ids.txt (one id per line), class_labels.txt (`id,label`),
image_sizes.txt (`id,width,height`), localization.txt (`id,x0,y0,x1,y1`, one line per box; or
OpenImages' `id,mask_path,ignore_path`, one line per instance) and, for datasets with both
boxes and masks, rpsloc's mask_localization.txt (the mask format). `read_wsol_metadata` parses
them into a `WsolMetadata`. A malformed line stops the read (an InputError naming the file and
line); a problem confined to one image goes to a `BadImages` policy, which the manifest stage
may set to skip the image and which otherwise raises. Its two users: `wsol_records` (the wsol,
synthetic, cub, ilsvrc and openimages adapters) and the benchmark's folder evaluator,
`rpsloc.metrics.evaluate_scoremap_folder`, which raises on every problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

#: An instance mask line: mask path, ignore path ('' for none), line, file.
MaskLine = tuple[str, str, int, Path]
_Keyed = dict[str, tuple[tuple[int, ...], int]]


@dataclass(frozen=True)
class WsolImage:
    """One image as its split's metadata states it: the line numbers say where each value was
    read; boxes are the file's own, mask paths joined to the mask root."""

    image_id: str
    line: int
    label: int | None
    label_line: int | None
    size: tuple[int, int] | None
    size_line: int | None
    boxes: list[BoxLine]
    mask_paths: tuple[Path, ...]
    ignore_path: Path | None


@dataclass(frozen=True)
class WsolMetadata:
    """One split of WSOL metadata: ids in file order with their line, and per id its label
    (None: class_labels.txt not read), size (None: image_sizes.txt missing or empty, as in
    OpenImages), box lines and mask lines (both empty: no ground truth)."""

    folder: Path
    ids: dict[str, int]
    labels: _Keyed | None
    sizes: _Keyed | None
    boxes: dict[str, list[BoxLine]]
    masks: dict[str, list[MaskLine]]

    def image(self, image_id: str, mask_root: Path | None = None) -> WsolImage:
        """A listed image's values; mask paths are relative to `mask_root` (as written when
        None). A non-positive size or two different ignore masks is a BadImageError."""
        label, label_line = None, None
        if self.labels is not None:
            (label,), label_line = self.labels[image_id]
        size, size_line = None, None
        if self.sizes is not None:
            (width, height), size_line = self.sizes[image_id]
            if width < 1 or height < 1:
                raise BadImageError(
                    image_id,
                    f"expected a positive size for {image_id}, found {width}x{height}",
                    self.folder / "image_sizes.txt",
                    size_line,
                )
            size = (width, height)
        mask_paths, ignore_path = (), None
        if self.masks:
            root = Path() if mask_root is None else mask_root
            mask_paths, ignore_path = _mask_paths(self.masks[image_id], root, image_id)
        return WsolImage(
            image_id=image_id,
            line=self.ids[image_id],
            label=label,
            label_line=label_line,
            size=size,
            size_line=size_line,
            boxes=self.boxes.get(image_id, []),
            mask_paths=mask_paths,
            ignore_path=ignore_path,
        )


def read_wsol_metadata(
    folder: Path,
    bad: BadImages | None = None,
    labels: bool = True,
    mask_localization: bool = True,
) -> WsolMetadata:
    """Parse one split's metadata folder (METHOD.md section 2); per-image problems go to `bad`
    (default: raised). Every listed id must appear in class_labels.txt, in image_sizes.txt
    unless it is empty, and in localization.txt unless it is missing or empty. The benchmark's
    evaluator reads neither labels nor mask_localization.txt (`labels`, `mask_localization`
    False), so a folder it accepts is judged by the benchmark's own files alone."""
    bad = BadImages() if bad is None else bad
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: metadata folder not found")
    ids_file = folder / "image_ids.txt"
    ids = read_image_ids(ids_file, bad)
    label_lines = (
        _read_keyed(folder / "class_labels.txt", ids, ids_file, "id,label", bad) if labels else None
    )
    sizes_file = folder / "image_sizes.txt"
    sizes = (
        _read_keyed(sizes_file, ids, ids_file, "id,width,height", bad)
        if sizes_file.is_file() and sizes_file.stat().st_size > 0
        else None
    )
    boxes, masks = _read_localization(folder / "localization.txt", ids, ids_file, bad)
    if mask_localization:
        _, extra_masks = _read_localization(
            folder / "mask_localization.txt", ids, ids_file, bad, masks_only=True
        )
        if masks and extra_masks:
            raise InputError(
                f"{folder}: masks listed in both localization.txt and mask_localization.txt"
            )
        masks = masks or extra_masks
    return WsolMetadata(folder, ids, label_lines, sizes, boxes, masks)


def wsol_records(
    metadata_dir: Path,
    images: Path,
    mask_root: Path | None = None,
    segmentations: Path | None = None,
    options: ReadOptions | None = None,
) -> list[ImageRecord]:
    """Records of one split in the WSOL benchmark's metadata format (METHOD.md section 2).

    Ids are relative to `images`, mask paths to `mask_root` (default `images`). With
    `segmentations` (CUB segmentation), each image's mask is
    `<segmentations>/<id without extension>.png`.

    Sizes come from image_sizes.txt; when it is missing or empty (OpenImages) they are read
    from the image headers. With `options.check_images` `header` or `decode` a listed size
    that disagrees with the image is a BadImageError. Boxes must lie in [0, width-1] x
    [0, height-1] with x0 <= x1, y0 <= y1, as in every real metadata file.
    """
    options = ReadOptions() if options is None else options
    bad = options.bad
    image_root = Path(images).absolute()
    mask_root = image_root if mask_root is None else Path(mask_root).absolute()
    metadata = read_wsol_metadata(Path(metadata_dir), bad)
    candidates = []
    for image_id in metadata.ids:
        if image_id in bad:
            continue
        try:
            image = metadata.image(image_id, mask_root)
        except BadImageError as error:
            bad.report(error)
            continue
        candidates.append(_candidate(image, metadata.folder, image_root, segmentations))
    return finish(candidates, options)


def _candidate(
    image: WsolImage, folder: Path, image_root: Path, segmentations: Path | None
) -> Candidate:
    candidate = Candidate(
        image_id=image.image_id,
        path=image_root / image.image_id,
        source=(folder / "image_ids.txt", image.line),
        label=image.label,
        label_source=(folder / "class_labels.txt", image.label_line),
        boxes=image.boxes,
        mask_paths=image.mask_paths,
        ignore_path=image.ignore_path,
    )
    if image.size is not None:
        candidate.size = image.size
        candidate.size_source = (folder / "image_sizes.txt", image.size_line)
    if segmentations is not None:
        mask = (Path(segmentations).absolute() / image.image_id).with_suffix(".png")
        candidate.mask_paths += (mask,)
    return candidate


# --------------------------------------------------------------------------- the files


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
            bad.report(duplicated(line, path, line_no, ids[line]))
            continue
        ids[line] = line_no
        if escapes(line):
            bad.report(escape_error(line, line, path, line_no))
    if not ids:
        raise InputError(f"{path}: no image ids (the split is empty)")
    return ids


def _read_keyed(
    path: Path, ids: Mapping[str, int], ids_file: Path, layout: str, bad: BadImages
) -> _Keyed:
    """A one-line-per-id file of integers -> {id: (values, line number)}, covering every id."""
    names = layout.split(",")[1:]
    parsed: _Keyed = {}
    for line_no, line in enumerate(read_lines(path), start=1):
        fields = line.split(",")
        if len(fields) != len(names) + 1:
            raise _wrong_fields(path, line_no, layout, line)
        image_id = fields[0]
        try:
            values = _integers(image_id, fields[1:], names, path, line_no, layout, line)
        except BadImageError as error:
            bad.report(error)
            continue
        if image_id not in ids:
            bad.report(not_listed(image_id, path, line_no, ids_file))
        elif image_id in parsed:
            bad.report(duplicated(image_id, path, line_no, parsed[image_id][1]))
        else:
            parsed[image_id] = (values, line_no)
    report_missing(ids, parsed, path, ids_file, bad)
    return parsed


def _read_localization(
    path: Path, ids: Mapping[str, int], ids_file: Path, bad: BadImages, masks_only: bool = False
) -> tuple[dict[str, list[BoxLine]], dict[str, list[MaskLine]]]:
    """localization.txt (boxes or OpenImages masks, told apart by the first line) -> per-id
    lines, so a box line among mask lines (or the reverse) is a malformed line. A missing or
    empty file means no ground truth; otherwise every id must appear."""
    if not path.is_file():
        return {}, {}
    lines = read_lines(path)
    if not lines:
        return {}, {}
    mask_format = masks_only or lines[0].count(",") == 2
    layout = "id,mask_path,ignore_path" if mask_format else "id,x0,y0,x1,y1"
    boxes: dict[str, list[BoxLine]] = {}
    masks: dict[str, list[MaskLine]] = {}
    for line_no, line in enumerate(lines, start=1):
        fields = line.split(",")
        if len(fields) != layout.count(",") + 1:
            raise _wrong_fields(path, line_no, layout, line)
        image_id = fields[0]
        if mask_format:
            mask, ignore = fields[1], fields[2]
            if not mask:
                raise InputError(f"{path}, line {line_no}: empty mask path for {image_id}")
        else:
            try:
                box = _integers(
                    image_id, fields[1:], ("x0", "y0", "x1", "y1"), path, line_no, layout, line
                )
            except BadImageError as error:
                bad.report(error)
                continue
        if image_id not in ids:
            bad.report(not_listed(image_id, path, line_no, ids_file))
        elif mask_format:
            for name in (mask, ignore):
                if name and escapes(name):
                    bad.report(escape_error(image_id, name, path, line_no))
            masks.setdefault(image_id, []).append((mask, ignore, line_no, path))
        else:
            boxes.setdefault(image_id, []).append((box, path, line_no))  # type: ignore[arg-type]
    report_missing(ids, masks if mask_format else boxes, path, ids_file, bad)
    return boxes, masks


def _wrong_fields(path: Path, line_no: int, layout: str, line: str) -> InputError:
    found = len(line.split(","))
    return InputError(
        f"{path}, line {line_no}: expected '{layout}', found {found} "
        f"field{'' if found == 1 else 's'} in {line!r}"
    )


def _integers(
    image_id: str,
    texts: Sequence[str],
    names: Sequence[str],
    path: Path,
    line_no: int,
    layout: str,
    line: str,
) -> tuple[int, ...]:
    """The integer fields of one image's line; a field that is not an integer is a bad value
    of that image (a `BadImageError`), its line being well formed."""
    values = []
    for text, name in zip(texts, names, strict=True):
        try:
            values.append(int(text))
        except ValueError:
            raise BadImageError(
                image_id,
                f"expected integers in '{layout}', found {line!r} (not an integer {name}: "
                f"{text!r})",
                path,
                line_no,
            ) from None
    return tuple(values)


def _mask_paths(
    lines: list[MaskLine], mask_root: Path, image_id: str
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
