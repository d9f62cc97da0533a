"""`rpsloc show`: one evaluated image's overlay and representer gallery, found in a
`results/<dataset>` folder by the image id alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rpsloc.datasets.records import read_manifest
from rpsloc.errors import InputError
from rpsloc.figures.drawing import draw_overlay, plt, save_with_box_legend
from rpsloc.figures.galleries import load_test_images, write_representer_gallery
from rpsloc.io import open_h5, read_strings
from rpsloc.readers import read_image_ious


@dataclass(frozen=True)
class ResultFolder:
    """A `results/<dataset>` folder as the workflow leaves it (README: stages and files)."""

    root: Path

    def backbones(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob("*/features"))

    def maps(self, backbone: str, variant: str, split: str) -> Path:
        return self.root / backbone / variant / "maps" / f"{split}.h5"

    def images(self, backbone: str, variant: str, split: str) -> Path:
        return self.root / backbone / variant / "metrics" / f"{split}-images.csv"

    def shards(self, backbone: str, split: str) -> list[Path]:
        folder = self.root / backbone / "features" / split
        return sorted(folder.glob("shard-*.h5"), key=lambda p: int(p.stem.split("-")[1]))

    def explanations(self, backbone: str, split: str) -> Path:
        return self.root / backbone / "explanations" / f"{split}.h5"

    def manifests(self) -> list[Path]:
        return sorted(p for p in self.root.glob("manifest/*.csv") if p.stem.count(".") == 0)


def show_image(
    results: str | Path,
    image_id: str,
    out: str | Path,
    backbone: str | None = None,
    variant: str = "rps",
    split: str | None = None,
) -> list[Path]:
    """`rpsloc show`: the overlay of one evaluated image and, where its split was explained,
    its representer gallery, written to `out`; returns the files written."""
    folder = ResultFolder(Path(results))
    backbone = backbone or _only_backbone(folder)
    split = split or _split_of(folder, backbone, variant, image_id)
    maps = folder.maps(backbone, variant, split)
    if not maps.is_file():
        raise InputError(f"{maps}: no maps for backbone {backbone!r}, variant {variant!r}")
    table, threshold = read_image_ious(folder.images(backbone, variant, split))
    ious = dict(zip(table["image_id"], table["iou"], strict=True))
    manifest = folder.root / "manifest" / f"{split}.csv"
    [test] = load_test_images(maps, folder.shards(backbone, split), manifest, [image_id])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = image_id.replace("/", "_")
    overlay = out / f"{stem}-overlay.png"
    figure, axis = plt.subplots(figsize=(4.2, 4.6))
    title = f"{image_id}\n{backbone} / {variant}, {split}, tau = {threshold:.2f}"
    draw_overlay(axis, test.picture, test.scores, threshold, test.boxes, title, ious.get(image_id))
    save_with_box_legend(figure, overlay)
    written = [overlay]
    explanations = folder.explanations(backbone, split)
    if explanations.is_file():
        gallery = out / f"{stem}-representers.png"
        train_manifest = _training_manifest(folder, explanations)
        write_representer_gallery(explanations, [test], train_manifest, gallery, threshold, ious)
        written.append(gallery)
    return written


def _only_backbone(folder: ResultFolder) -> str:
    backbones = folder.backbones()
    if len(backbones) != 1:
        found = ", ".join(backbones) or "none"
        raise InputError(f"{folder.root}: choose a backbone with --backbone (found: {found})")
    return backbones[0]


def _split_of(folder: ResultFolder, backbone: str, variant: str, image_id: str) -> str:
    """The evaluated split (one with maps of this variant) whose manifest lists the image."""
    for manifest in folder.manifests():
        if not folder.maps(backbone, variant, manifest.stem).is_file():
            continue
        if any(record.image_id == image_id for record in read_manifest(manifest)):
            return manifest.stem
    raise InputError(
        f"{folder.root}: image {image_id!r} is in no evaluated split of {backbone}/{variant}"
    )


def _training_manifest(folder: ResultFolder, explanations: Path) -> Path:
    """The manifest that lists every training image of the explanations file."""
    with open_h5(explanations) as handle:
        training = set(read_strings(handle["training_image_ids"]))
    for manifest in folder.manifests():
        if training <= {record.image_id for record in read_manifest(manifest)}:
            return manifest
    raise InputError(f"{folder.root}/manifest: no manifest lists the training images")
