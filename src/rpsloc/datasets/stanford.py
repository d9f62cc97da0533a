"""Stanford Cars and Stanford Dogs (METHOD.md section 2): MATLAB `.mat` lists with 1-based
classes and boxes; Dogs keeps its boxes in VOC-style XML files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rpsloc.datasets.policy import (
    BadImageError,
    Candidate,
    ReadOptions,
    escape_error,
    escapes,
    finish,
)
from rpsloc.datasets.records import ImageRecord
from rpsloc.datasets.voc import voc_annotation
from rpsloc.errors import InputError

# --------------------------------------------------------------------------- .mat files


def _load_mat(path: Path, names: Sequence[str]) -> dict[str, Any]:
    """The named variables of a MATLAB file (scipy.io.loadmat, squeezed); errors name the file
    and the missing variable. scipy is imported here: every job reads manifests through this
    package, and only the Stanford Cars and Dogs adapters read .mat files."""
    import scipy.io

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


def _mat_int(value: Any, path: Path, entry: int, name: str, image_id: str) -> int:
    """An integer field of one image's entry; anything else is a bad value of that image."""
    try:
        number = float(np.asarray(value).item())
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise BadImageError(
            image_id,
            f"expected an integer {name} for {image_id}, found {value!r}",
            path,
            entry,
            "entry",
        )
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
DOGS_SPLITS = ("train", "test")


def cars_annotations(root: Path, split: str) -> Path:
    """The split's annotation file: the labelled test file sits at the top or in devkit/."""
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
    path = cars_annotations(root, split)
    annotations = np.atleast_1d(_load_mat(path, ["annotations"])["annotations"])
    missing = [name for name in CARS_FIELDS if name not in (annotations.dtype.names or ())]
    if missing:
        raise InputError(f"{path}: annotations lack the fields {missing}")
    seen: dict[str, int] = {}
    candidates = []
    for entry, item in enumerate(annotations, start=1):
        fname = _mat_str(item["fname"], path, entry, "fname")
        image_id = f"{folder}/{fname}"
        try:
            x0, y0, x1, y1, label = (
                _mat_int(item[name], path, entry, name, image_id) for name in CARS_FIELDS[:5]
            )
            if escapes(fname):
                raise escape_error(image_id, fname, path, entry, "entry")
            if image_id in seen:
                raise BadImageError(
                    image_id,
                    f"duplicated image {fname!r} (first at entry {seen[image_id]})",
                    path,
                    entry,
                    "entry",
                )
        except BadImageError as error:
            options.bad.report(error)
        else:
            seen[image_id] = entry
            candidates.append(
                Candidate(
                    image_id=image_id,
                    path=root / folder / fname,
                    source=(path, entry),
                    label=label - 1,
                    boxes=[((x0, y0, x1, y1), path, entry)],
                    box_origin=1,
                    unit="entry",
                )
            )
    return finish(candidates, options)


# --------------------------------------------------------------------------- Stanford Dogs


def dogs_records(root: Path, split: str, options: ReadOptions) -> list[ImageRecord]:
    """Stanford Dogs (METHOD.md section 2): `<root>/{split}_list.mat` (`file_list`,
    `annotation_list`, 1-based `labels`), images `<root>/Images/<file>`, VOC-style XML
    `<root>/Annotation/<annotation>` with the size and one `object/bndbox` per dog. Boxes are
    VOC's 1-based pixel coordinates, shifted to 0-based."""
    root = Path(root).absolute()
    if split not in DOGS_SPLITS:
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
        try:
            label = _mat_int(label, path, entry, "label", image_id)
            if escapes(image_id) or escapes(annotation):
                name = image_id if escapes(image_id) else annotation
                raise escape_error(image_id, name, path, entry, "entry")
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
            parsed = voc_annotation(xml, image_id)
            candidates.append(
                Candidate(
                    image_id=image_id,
                    path=root / "Images" / image_id,
                    source=(path, entry),
                    label=label - 1,
                    boxes=parsed.boxes,
                    box_origin=1,
                    size=parsed.size,
                    size_source=(xml, None),
                    unit="entry",
                )
            )
        except BadImageError as error:
            options.bad.report(error)
    return finish(candidates, options)
