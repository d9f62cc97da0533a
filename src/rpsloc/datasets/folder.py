"""A folder of images and nothing else (docs/datasets.md, "A folder of images"): every file
Pillow can open below a folder, recursively, with no metadata, labels unknown (-1) and no
boxes. It serves as the training split (`w*` from the user's own unlabeled photos, METHOD.md
section 1) and as prediction splits (maps and boxes, no metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageFile

from rpsloc.datasets.policy import Candidate, ReadOptions, check_relative, finish
from rpsloc.datasets.records import ImageRecord
from rpsloc.errors import InputError


def image_extensions() -> frozenset[str]:
    """The file extensions (lower case, with the dot) of every format Pillow can decode;
    its stub formats (HDF5, GRIB, BUFR, WMF), which it recognises but cannot decode without
    an extra handler, are not images here."""
    extensions = Image.registered_extensions()  # registers Pillow's plugins first
    decodable = {
        name
        for name, (factory, _) in Image.OPEN.items()
        if not (isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile))
    }
    return frozenset(ext.lower() for ext, name in extensions.items() if name in decodable)


def image_files(folder: Path) -> list[Path]:
    """Every image file below `folder`, recursively and sorted: files whose extension
    (case-insensitive) a Pillow format opens. Hidden files and folders (a leading '.', such
    as macOS `._` files) are left out; other files (notes, CSV tables) are not images."""
    extensions = image_extensions()
    return sorted(
        path
        for path in Path(folder).rglob("*")
        if path.is_file()
        and path.suffix.lower() in extensions
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def folder_records(root: Path, folder: str | None, options: ReadOptions) -> list[ImageRecord]:
    """The images below `root / folder` (all of `root` when `folder` is None), ids relative
    to `root` so the same photo has the same id in every split; sizes from the headers. A
    file that does not open is a bad image (`on_bad_image`)."""
    root = Path(root).absolute()
    if folder is not None:
        check_relative(folder, f"folders: {folder!r}")
    base = root if folder is None else root / folder
    if not base.is_dir():
        raise InputError(f"{base}: expected a folder of images, found none")
    files = image_files(base)
    if not files:
        raise InputError(
            f"{base}: no image files below it (expected extensions Pillow opens, such as "
            ".jpg, .png, .tif, .webp)"
        )
    return image_records(files, root, options, source=base)


def image_records(
    files: Sequence[Path], root: Path, options: ReadOptions, source: Path | None = None
) -> list[ImageRecord]:
    """Records of image files, ids their paths relative to `root`, sizes from the headers;
    `source` (default `root`) is where an error says the file was listed."""
    root = Path(root).absolute()
    candidates = [
        Candidate(
            image_id=Path(path).absolute().relative_to(root).as_posix(),
            path=Path(path).absolute(),
            source=(source or root, None),
        )
        for path in files
    ]
    return finish(candidates, options)
