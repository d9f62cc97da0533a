"""The `rpsloc` command: localize a folder of images, generate the synthetic set, inspect
stage outputs, evaluate anyone's score maps with the benchmark's protocol, check a checkpoint
before a long run, print a summary and draw one image's results."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from rpsloc.errors import RpslocError
from rpsloc.io import read_hdf5
from rpsloc.synthetic import DEFAULT_STYLE, STYLES


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        return arguments.run(arguments)
    except (RpslocError, FileNotFoundError) as error:
        print(f"rpsloc: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rpsloc", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    synth = commands.add_parser("synth", help="write the built-in synthetic dataset")
    synth.add_argument("out", type=Path, help="folder to write (WSOL metadata layout)")
    synth.add_argument("--train", type=int, default=64)
    synth.add_argument("--val", type=int, default=32)
    synth.add_argument("--test", type=int, default=32)
    synth.add_argument("--classes", type=int, default=4)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--max-side", type=int, default=320)
    synth.add_argument(
        "--style",
        choices=sorted(STYLES),
        default=DEFAULT_STYLE,
        help="grey: objects on near-grey backgrounds; mosaic: on a multi-hue texture",
    )
    synth.set_defaults(run=_synth)

    inspect = commands.add_parser("inspect", help="print an HDF5 file's tree and attributes")
    inspect.add_argument("file", type=Path)
    inspect.add_argument("--values", type=int, default=4, help="values shown per dataset")
    inspect.set_defaults(run=_inspect)

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a folder of <image_id>.npy score maps like the WSOL benchmark"
    )
    evaluate.add_argument(
        "--metadata", type=Path, required=True, help="one split's WSOL metadata folder"
    )
    evaluate.add_argument("--scoremaps", type=Path, required=True)
    evaluate.add_argument("--contours", choices=["multi", "largest"], default="multi")
    evaluate.add_argument("--cam-curve-interval", type=float, default=0.01)
    evaluate.add_argument("--iou", type=int, nargs="+", default=[30, 50, 70])
    evaluate.add_argument("--mask-root", type=Path, default=None)
    evaluate.add_argument(
        "--workers", type=int, default=1, help="processes sharing the images (same numbers)"
    )
    evaluate.add_argument("--out", type=Path, required=True, help="JSON file to write")
    evaluate.set_defaults(run=_evaluate)

    weights = commands.add_parser("weights", help="checkpoint tools")
    weights_commands = weights.add_subparsers(required=True, metavar="ACTION")
    check = weights_commands.add_parser(
        "check", help="load a checkpoint strictly and report what loaded"
    )
    check.add_argument("--backbone", required=True, help="architecture, e.g. resnet50")
    check.add_argument("--checkpoint", type=Path, required=True)
    check.add_argument("--format", default="auto", help="checkpoint format (default: detect)")
    check.add_argument(
        "--max-size-gb",
        type=float,
        default=None,
        help="refuse a file holding more than this uncompressed (default: 2, as the workflow)",
    )
    check.set_defaults(run=_weights_check)

    summary = commands.add_parser("summary", help="print a dataset's summary table")
    summary.add_argument("results", type=Path, help="results/<dataset> folder")
    summary.set_defaults(run=_summary)

    show = commands.add_parser(
        "show", help="draw one evaluated image: its overlay and its representer gallery"
    )
    show.add_argument("--results", type=Path, required=True, help="results/<dataset> folder")
    show.add_argument("--image", required=True, help="image id as in the manifest")
    show.add_argument("--backbone", default=None, help="default: the only backbone there")
    show.add_argument("--variant", default="rps", help="map variant (default: rps)")
    show.add_argument("--split", default=None, help="default: the split listing the image")
    show.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG files")
    show.set_defaults(run=_show)

    localize = commands.add_parser(
        "localize",
        help="predicted boxes for a folder of images: CSV, COCO file and overlays, no config",
        description="Compute w* from the training images (default: IMAGES itself, no labels "
        "needed), then write every image's predicted boxes in its original pixels with their "
        "scores (docs/boxes.md). Running it again reuses what a previous run finished.",
    )
    localize.add_argument("images", type=Path, help="folder of images (recursive; any format)")
    localize.add_argument("--backbone", required=True, help="architecture, e.g. resnet50")
    localize.add_argument(
        "--checkpoint", required=True, help="the backbone's checkpoint file ('random', 'none')"
    )
    localize.add_argument("--format", default="auto", help="checkpoint format (default: detect)")
    localize.add_argument(
        "--train", type=Path, default=None, help="images for w* (default: IMAGES)"
    )
    localize.add_argument(
        "--threshold",
        type=_threshold,
        default="auto",
        help="otsu (no ground truth needed; what auto means here) or a number in [0, 1)",
    )
    localize.add_argument("--min-area", type=float, default=0.005, help="smallest box kept")
    localize.add_argument("--image-size", type=int, default=224)
    localize.add_argument(
        "--crop-size", type=int, default=None, help="centre crop (default: none, the whole image)"
    )
    localize.add_argument("--output-stride", type=int, default=16)
    localize.add_argument(
        "--train-image-size", type=int, default=224, help="training images for w* (no crop)"
    )
    localize.add_argument("--masks", action="store_true", help="also write binary mask PNGs")
    localize.add_argument("--overlays", type=int, default=8, help="images in the figures")
    localize.add_argument("--device", default="auto")
    localize.add_argument("--batch-size", type=int, default=16)
    localize.add_argument("--out", type=Path, required=True, help="output (and work) folder")
    localize.set_defaults(run=_localize)
    return parser


def _synth(arguments: argparse.Namespace) -> int:
    from rpsloc.synthetic import generate_synthetic_dataset

    generate_synthetic_dataset(
        arguments.out,
        splits={"train": arguments.train, "val": arguments.val, "test": arguments.test},
        n_classes=arguments.classes,
        seed=arguments.seed,
        max_side=arguments.max_side,
        style=arguments.style,
    )
    print(f"wrote the synthetic dataset to {arguments.out}")
    return 0


def _inspect(arguments: argparse.Namespace) -> int:
    print(describe_h5(arguments.file, arguments.values))
    return 0


def describe_h5(path: Path, values: int = 4) -> str:
    """The tree of an HDF5 file: groups, datasets with shape and dtype, attributes, a few
    values. Works on incomplete files too (it says so), since inspecting them is the point; a
    file that is not HDF5 or is cut short is an error saying which."""
    lines = [str(path)]
    with read_hdf5(path) as handle:
        if not handle.attrs.get("complete", False):
            lines.append("  WARNING: no 'complete' mark: written by a run that did not finish")
        lines += _attribute_lines(handle.attrs, "  ")

        def visit(name: str, item: h5py.HLObject) -> None:
            depth = "  " * (name.count("/") + 1)
            if isinstance(item, h5py.Dataset):
                lines.append(
                    f"{depth}{name}: shape {item.shape}, dtype {item.dtype}{_preview(item, values)}"
                )
            else:
                lines.append(f"{depth}{name}/")
            lines.extend(_attribute_lines(item.attrs, depth + "  "))

        handle.visititems(visit)
    return "\n".join(lines)


def _attribute_lines(attrs: h5py.AttributeManager, indent: str) -> list[str]:
    return [f"{indent}@{key} = {_plain(attrs[key])!r}" for key in sorted(attrs)]


def _plain(value: object) -> object:
    """An attribute or a dataset's first values as Python writes them (`112`, `True`, `[1, 2]`,
    strings decoded), not numpy's scalar reprs (`np.int64(112)`, `np.True_`), which h5py
    returns for every number and flag."""
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [item.decode() if isinstance(item, bytes) else item for item in value]
    return value


def _preview(dataset: h5py.Dataset, values: int) -> str:
    if values <= 0 or dataset.size == 0:
        return ""
    flat = dataset[(0,) * (dataset.ndim - 1) + (slice(0, values),)] if dataset.ndim else dataset[()]
    return f", first values {_plain(np.atleast_1d(flat))}"


def _evaluate(arguments: argparse.Namespace) -> int:
    from rpsloc.io import write_json_atomic
    from rpsloc.metrics.folder import evaluate_scoremap_folder

    result = evaluate_scoremap_folder(
        metadata_dir=arguments.metadata,
        scoremap_dir=arguments.scoremaps,
        contours=arguments.contours,
        interval=arguments.cam_curve_interval,
        iou_thresholds=arguments.iou,
        mask_root=arguments.mask_root,
        workers=arguments.workers,
    )
    write_json_atomic(result, arguments.out)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _weights_check(arguments: argparse.Namespace) -> int:
    from rpsloc.backbones.checkpoints import check_checkpoint
    from rpsloc.backbones.formats import DEFAULT_MAX_BYTES

    limit = DEFAULT_MAX_BYTES if arguments.max_size_gb is None else arguments.max_size_gb * 1e9
    report = check_checkpoint(
        arguments.checkpoint, arguments.backbone, arguments.format, max_bytes=round(limit)
    )
    print(report.summary())
    return 0


def _summary(arguments: argparse.Namespace) -> int:
    import pandas as pd

    path = arguments.results / "summary.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no summary yet; run the workflow for this dataset")
    with pd.option_context("display.max_columns", None, "display.width", 200):
        print(pd.read_csv(path).to_string(index=False))
    return 0


def _show(arguments: argparse.Namespace) -> int:
    from rpsloc.figures.show import show_image

    written = show_image(
        arguments.results,
        arguments.image,
        arguments.out,
        backbone=arguments.backbone,
        variant=arguments.variant,
        split=arguments.split,
    )
    for path in written:
        print(f"wrote {path}")
    return 0


def _threshold(text: str) -> str | float:
    """`auto`, `otsu` or a number (`--threshold`)."""
    if text in ("auto", "otsu"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected auto, otsu or a number, found {text!r}"
        ) from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a threshold in [0, 1), found {value}")
    return value


def _localize(arguments: argparse.Namespace) -> int:
    from rpsloc.api import localize_folder

    written = localize_folder(
        images=arguments.images,
        train=arguments.train,
        backbone={
            "arch": arguments.backbone,
            "weights": arguments.checkpoint,
            "checkpoint_format": arguments.format,
        },
        out=arguments.out,
        threshold=arguments.threshold,
        min_area=arguments.min_area,
        image_size=arguments.image_size,
        crop_size=arguments.crop_size,
        output_stride=arguments.output_stride,
        train_image_size=arguments.train_image_size,
        masks=arguments.masks,
        overlays=arguments.overlays,
        device=arguments.device,
        batch_size=arguments.batch_size,
    )
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
