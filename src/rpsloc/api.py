"""The Python API for notebooks (README, "Localize your own images"; docs/boxes.md): a
`Localizer` computes `w*` from training images (or from existing feature shards), predicts the
boxes, maps and scores of new images and explains a prediction by the training images that
support and oppose it most (METHOD.md section 1).

Every step is the workflow's own stage function (`features.extract_shard`,
`representer.write_representer`, `maps.write_maps`, `boxes.predicted.write_split_boxes`,
`explanations.write_test_explanations`) writing its file in a work folder laid out like the
workflow's `results/` (`rpsloc.paths`, dataset `localize`); a step whose outputs exist and are
newer than its inputs is not run again, so a run that was interrupted resumes where it stopped
(`rpsloc localize` is this class with the work folder `--out`). The settings come from
`rpsloc.settings.resolve_settings`, as the workflow's do.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from rpsloc import paths
from rpsloc.boxes.predicted import write_split_boxes, write_split_masks
from rpsloc.datasets.folder import folder_records, image_records
from rpsloc.datasets.policy import BadImages, ReadOptions, write_skipped
from rpsloc.datasets.records import read_manifest, write_manifest
from rpsloc.errors import InputError
from rpsloc.explanations import write_test_explanations
from rpsloc.features import extract_shard
from rpsloc.io import read_attrs, read_json, write_json_atomic
from rpsloc.maps import write_maps
from rpsloc.readers import (
    EVAL_ROLE,
    TRAIN_ROLE,
    BoxThreshold,
    Explanation,
    MapsFile,
    read_box_threshold,
    read_explanations,
    read_maps,
    read_predicted_boxes,
    shard_count,
)
from rpsloc.representer import write_representer
from rpsloc.scoremaps import score_map
from rpsloc.settings import require_checkpoint_files, resolve_settings

DATASET = "localize"
TRAIN_SPLIT = "train"
PREDICTED_SPLIT = "predicted"
VARIANT = "rps"
SETTINGS_FILE = "localize.json"  # what decided the features: another run's are refused
BOX_SETTINGS_FILE = "localize-boxes.json"  # what decided the boxes: a change redoes them

#: Images to localize: a folder (every image below it, as the `folder` adapter reads it) or a
#: list of image files.
Images = str | Path | Sequence[str | Path]


@dataclass(frozen=True)
class Prediction:
    """The predictions for one split: boxes in original pixels, best first per image (image_id,
    rank, x0, y0, x1, y1, score), each image's objectness (image_id, width, height, n_boxes,
    objectness), the threshold they were cut at and the stage files behind them."""

    split: str
    boxes: pd.DataFrame
    images: pd.DataFrame
    threshold: BoxThreshold
    files: Mapping[str, Path]

    @property
    def maps(self) -> MapsFile:
        """The activation maps at feature resolution, in the images' order."""
        return read_maps(self.files["maps"])

    def score_map(self, image_id: str) -> np.ndarray:
        """One image's score map in [0, 1] at the crop's resolution, as the boxes were cut."""
        maps = self.maps
        if image_id not in maps.position():
            raise InputError(f"{maps.path}: no map for image {image_id!r}")
        return score_map(maps.maps[maps.position()[image_id]], int(maps.attrs["crop_size"]))


class Localizer:
    """Boxes for any images from a frozen backbone and `w*` (METHOD.md section 1).

    `backbone` is a backbone entry of the configuration (`{"arch": "resnet50", "weights":
    "moco_v2.pth"}`; README "Backbones and checkpoints"); `crop_size=None` resizes to
    `image_size` without a centre crop, so every box can reach every part of the image; the
    training images are resized to `train_image_size` without a crop, as the authors' are;
    `threshold` and `min_area` are the `boxes:` settings (docs/boxes.md); `workdir` holds every
    stage file (a new temporary folder when None). `progress` shows a progress bar per call.
    The backbone is built once and kept for every shard of every call (as the workflow's warm
    extraction process keeps it).
    """

    def __init__(
        self,
        backbone: Mapping[str, Any],
        image_size: int = 224,
        crop_size: int | None = None,
        output_stride: int = 16,
        train_image_size: int = 224,
        threshold: str | float = "auto",
        min_area: float = 0.005,
        device: str = "auto",
        batch_size: int = 16,
        shard_size: int = 256,
        on_bad_image: str = "error",
        workdir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="rpsloc-")).absolute()
        self.name = str(backbone["arch"])
        config = {
            "datasets": {
                DATASET: {
                    "adapter": "folder",
                    "root": str(self.workdir),
                    "train_split": TRAIN_SPLIT,
                    "eval_splits": [PREDICTED_SPLIT],
                    "image_size": image_size,
                    "crop_size": crop_size,
                    "train_image_size": train_image_size,
                    "output_stride": output_stride,
                    "on_bad_image": on_bad_image,
                    "backbones": [self.name],
                    "variants": [VARIANT],
                }
            },
            "backbones": {self.name: dict(backbone)},
            "boxes": {"threshold": threshold, "min_area": min_area},
        }
        settings = resolve_settings(config)
        require_checkpoint_files(settings)
        self.dataset = settings.datasets[DATASET]
        self.boxes = settings.boxes
        self.model = settings.backbones[self.name].model_config()
        self.checkpoint = settings.backbones[self.name].checkpoint
        self.device = device
        self.batch_size = batch_size
        self.shard_size = shard_size
        self.on_bad_image = on_bad_image
        self.progress = progress
        self._train_shards: list[Path] | None = None
        self._backbone_cache: dict = {}  # the backbone readied once, for every shard and call
        self._check_settings()

    # ------------------------------------------------------------------ public

    def fit(self, images: Images | None = None, shards: Sequence[str | Path] = ()) -> Localizer:
        """Compute `w*` from training images (a folder or files: their features first) or
        from existing training feature shards of the same backbone and sizes."""
        if (images is None) == (not shards):
            raise InputError("Localizer.fit: give training images or feature shards, not both")
        with self._steps("fit", 1 if shards else 2) as step:
            if shards:
                self._train_shards = [Path(shard).absolute() for shard in shards]
                self._check_shards(self._train_shards)
            else:
                self._train_shards = self._features(step, images, TRAIN_SPLIT, TRAIN_ROLE)
            step(
                "representer",
                [self._representer],
                self._train_shards,
                lambda: write_representer(
                    self._train_shards, self._representer, provenance={"split": TRAIN_SPLIT}
                ),
            )
        return self

    def predict(self, images: Images, split: str = PREDICTED_SPLIT) -> Prediction:
        """The boxes, maps and scores of images (a folder or files), as the split `split`."""
        if split == TRAIN_SPLIT:
            raise InputError(f"Localizer.predict: {TRAIN_SPLIT!r} names the training images")
        representer = self._fitted()
        names = self._names(split)
        files = {
            "maps": self._path(paths.MAPS, **names),
            "boxes": self._path(paths.BOXES, **names),
            "images": self._path(paths.BOXES_IMAGES, **names),
            "coco": self._path(paths.BOXES_COCO, **names),
            "manifest": self._path(paths.MANIFEST, dataset=DATASET, split=split),
        }
        rule = self.boxes.threshold_rule(self.dataset, split, labelled=())
        with self._steps("predict", 3) as step:
            shards = self._features(step, images, split, EVAL_ROLE)
            step(
                "maps",
                [files["maps"]],
                [*shards, representer],
                lambda: write_maps(
                    VARIANT, shards, files["maps"], representer, provenance={"split": split}
                ),
            )
            step(
                "boxes",
                [files["boxes"], files["images"], files["coco"]],
                [files["maps"], files["manifest"], self.workdir / BOX_SETTINGS_FILE],
                lambda: write_split_boxes(
                    files["maps"],
                    files["manifest"],
                    files["boxes"],
                    files["images"],
                    files["coco"],
                    rule,
                    self.boxes.min_area,
                ),
            )
        predicted = read_predicted_boxes(files["boxes"], files["images"])
        threshold = read_box_threshold(files["coco"])
        return Prediction(split, predicted.boxes, predicted.images, threshold, files)

    def explain(self, image_id: str, split: str = PREDICTED_SPLIT, top_k: int = 5) -> Explanation:
        """The `top_k` training images whose representer points support and oppose an image's
        predicted foreground most, with their contributions (METHOD.md section 1)."""
        representer = self._fitted()
        names = self._names(split)
        out = self._path(paths.EXPLANATIONS, **names)
        if not self._path(paths.MAPS, **names).is_file():
            raise InputError(f"Localizer.explain: split {split!r} has no predictions yet")
        shards = self._shards(split)
        with self._steps("explain", 1) as step:
            step(
                "explanations",
                [out],
                [*shards, representer],
                lambda: write_test_explanations(representer, shards, out, top_k),
            )
        (explanation,) = read_explanations(out, [image_id], top_k)
        return explanation

    # ------------------------------------------------------------------ steps

    @property
    def _representer(self) -> Path:
        return self._path(
            paths.REPRESENTER, dataset=DATASET, backbone=self.name, selection="global"
        )

    def _fitted(self) -> Path:
        if self._train_shards is None and not self._representer.is_file():
            raise InputError("Localizer: call fit() before predict() or explain()")
        return self._representer

    def _names(self, split: str) -> dict[str, str]:
        return {"dataset": DATASET, "backbone": self.name, "variant": VARIANT, "split": split}

    def _path(self, template: str, **names: str) -> Path:
        return self.workdir / template.format(**names)

    def _shards(self, split: str) -> list[Path]:
        manifest = self._path(paths.MANIFEST, dataset=DATASET, split=split)
        count = shard_count(len(read_manifest(manifest)), self.shard_size)
        return [
            self._path(
                paths.FEATURE_SHARD, dataset=DATASET, backbone=self.name, split=split, shard=k
            )
            for k in range(count)
        ]

    def _features(self, step: _Steps, images: Images, split: str, role: str) -> list[Path]:
        """The split's manifest (rewritten only when it changes) and its feature shards."""
        manifest = self._path(paths.MANIFEST, dataset=DATASET, split=split)
        step("manifest", [], [], lambda: self._write_manifest(images, split, manifest))
        shards = self._shards(split)
        image_size, crop_size = self.dataset.geometry(split)
        step.expect(len(shards))
        for index, shard in enumerate(shards):
            step(
                f"features {split} {index + 1}/{len(shards)}",
                [shard],
                [manifest],
                lambda index=index, shard=shard: extract_shard(
                    manifest,
                    role,
                    index,
                    self.shard_size,
                    self.model,
                    image_size,
                    crop_size,
                    self.dataset.output_strides[self.name],
                    shard,
                    batch_size=self.batch_size,
                    device=self.device,
                    provenance={"dataset": DATASET, "backbone": self.name, "split": split},
                    backbone_cache=self._backbone_cache,
                ),
            )
        return shards

    def _write_manifest(self, images: Images, split: str, manifest: Path) -> None:
        options = ReadOptions(bad=BadImages(skip=self.on_bad_image == "skip"))
        if isinstance(images, (str, Path)):
            records = folder_records(Path(images), None, options)
        else:
            files = [Path(image).absolute() for image in images]
            if not files:
                raise InputError(f"Localizer: no images given for split {split!r}")
            root = Path(os.path.commonpath([file.parent for file in files]))
            records = image_records(files, root, options)
        if not records:
            raise InputError(f"Localizer: split {split!r} has no usable image")
        candidate = manifest.with_name(f"{manifest.name}.new")
        write_manifest(records, candidate)
        if manifest.is_file() and manifest.read_bytes() == candidate.read_bytes():
            candidate.unlink()  # unchanged: its features stay up to date
        else:
            os.replace(candidate, manifest)
        skipped = self._path(paths.MANIFEST_SKIPPED, dataset=DATASET, split=split)
        write_skipped(options.bad.skipped, skipped)

    def _check_shards(self, shards: Sequence[Path]) -> None:
        """Existing shards must be training shards of this backbone's geometry."""
        image_size, crop_size = self.dataset.geometry(TRAIN_SPLIT)
        expected = {
            "role": TRAIN_ROLE,
            "backbone_arch": self.model["arch"],
            "image_size": image_size,
            "crop_size": crop_size,
            "output_stride": self.dataset.output_strides[self.name],
        }
        for shard in shards:
            attrs = read_attrs(shard)
            wrong = {k: attrs.get(k) for k, v in expected.items() if attrs.get(k) != v}
            if wrong:
                raise InputError(
                    f"{shard}: expected training features with {expected}, found {wrong}"
                )

    def _check_settings(self) -> None:
        """The work folder's features were made with these settings: a folder made with other
        ones is refused, since its files would be reused; other box settings redo the boxes."""
        stamp = {
            "backbone": self.model,
            "checkpoint": _file_stamp(self.checkpoint) if self.checkpoint else None,
            "image_size": self.dataset.image_size,
            "crop_size": self.dataset.crop_size,
            "train_image_size": self.dataset.train_image_size,
            "output_stride": self.dataset.output_strides[self.name],
            "shard_size": self.shard_size,
        }
        path = self.workdir / SETTINGS_FILE
        found = read_json(path) if path.is_file() else stamp
        changed = sorted(key for key in stamp if found.get(key) != stamp[key])
        if changed:
            raise InputError(
                f"{self.workdir}: holds features made with other settings ({', '.join(changed)} "
                "differ); choose another output folder or delete this one"
            )
        boxes = asdict(self.boxes)
        for settings, where in ((stamp, path), (boxes, self.workdir / BOX_SETTINGS_FILE)):
            if not where.is_file() or read_json(where) != settings:
                write_json_atomic(settings, where)

    def _steps(self, name: str, total: int) -> _Steps:
        return _Steps(name, total, self.progress)


def localize_folder(
    images: Path,
    out: Path,
    backbone: Mapping[str, Any],
    train: Path | None = None,
    masks: bool = False,
    overlays: int = 8,
    **options: Any,
) -> dict[str, Path]:
    """`rpsloc localize`: `w*` from `train` (default: `images` themselves), the boxes of
    `images`, the figures of the predictions and highest and lowest objectness, and with
    `masks` each image's mask PNG, all in `out`; `options` go to `Localizer`. Returns the
    files a user reads, by name."""
    # Imported here: the figures select matplotlib's Agg backend, which a notebook must keep.
    from rpsloc.figures.galleries import plot_objectness, plot_predictions

    out = Path(out).absolute()
    for folder in filter(None, (images, train)):
        folder = Path(folder).absolute()
        if out == folder or folder in out.parents:
            raise InputError(
                f"--out {out} is inside the images folder {folder}: its figures would be read as "
                "images the next time; choose an output folder outside it"
            )
    localizer = Localizer(backbone, workdir=out, progress=True, **options)
    prediction = localizer.fit(train or images).predict(images)
    files = prediction.files
    figures = {
        name: out / paths.figure(name).format(dataset=DATASET)
        for name in ("predictions", "objectness")
    }
    drawn = [files["boxes"], files["images"], files["coco"]]
    with _Steps("figures", 2 + masks, progress=True) as step:
        for name, draw in (("predictions", plot_predictions), ("objectness", plot_objectness)):
            count = overlays if name == "predictions" else max(1, (overlays + 1) // 2)
            step(
                name,
                [figures[name]],
                drawn,
                lambda draw=draw, name=name, count=count: draw(
                    *drawn, files["manifest"], figures[name], count
                ),
            )
        written = {"boxes": files["boxes"], "images": files["images"], "coco": files["coco"]}
        if masks:
            folder = localizer._path(paths.BOX_MASKS, **localizer._names(prediction.split))
            step(
                "masks",
                [folder / ".complete"],
                [files["coco"]],
                lambda: _write_masks(files, folder),
            )
            written["masks"] = folder
    return {**written, **figures}


def _write_masks(files: Mapping[str, Path], folder: Path) -> None:
    """The masks, then a mark that they are all there (a folder has no atomic rename)."""
    write_split_masks(files["maps"], files["manifest"], files["coco"], folder)
    (folder / ".complete").touch()


def _file_stamp(path: str) -> dict[str, int]:
    status = os.stat(path)
    return {"size": status.st_size, "modified_ns": status.st_mtime_ns}


class _Steps:
    """Runs a call's steps make-like: a step runs when one of its outputs is missing or
    older than one of its inputs, else its files are reused; a progress bar counts them."""

    def __init__(self, name: str, total: int, progress: bool) -> None:
        self.bar = tqdm(desc=name, unit="step", disable=not progress, total=total)
        self.reused = 0

    def __enter__(self) -> _Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.set_postfix_str(f"{self.reused} reused")
        self.bar.close()

    def expect(self, more: int) -> None:
        """`more` steps beyond those counted so far."""
        self.bar.total += more
        self.bar.refresh()

    def __call__(
        self, name: str, outputs: Sequence[Path], inputs: Sequence[Path], run: Callable[[], Any]
    ) -> None:
        self.bar.set_description_str(name)
        if _up_to_date(outputs, inputs):
            self.reused += 1
        else:
            run()
        self.bar.update(1)


def _up_to_date(outputs: Sequence[Path], inputs: Sequence[Path]) -> bool:
    if not outputs or not all(Path(output).is_file() for output in outputs):
        return False
    oldest = min(Path(output).stat().st_mtime_ns for output in outputs)
    return all(Path(source).stat().st_mtime_ns <= oldest for source in inputs)
