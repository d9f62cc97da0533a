"""The configuration resolved once: defaults, cross-key checks and effective values.

`config/config.yaml` (or the user's `--configfile`) is first validated against
`workflow/schemas/config.schema.yaml`, which catches misspelt keys and wrong types and fills
the schema's defaults. `resolve_settings` then turns it into typed settings: per-adapter
defaults (METHOD.md section 1), the threshold split, the output stride each backbone really
produces on each dataset, `weights` as a kind and a path, and every reference between sections
checked. The workflow (`workflow/rules/common.smk`), the CLI and the tests all read these
settings; no other module interprets the raw configuration.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from rpsloc import paths
from rpsloc.backbones import Weights, architecture, effective_output_stride, parse_weights
from rpsloc.backbones.formats import (
    DEFAULT_MAX_BYTES,
    DINO_LINEAR_FORMATS,
    EFFICIENTNET_FORMATS,
    RESNET_FORMATS,
    require_checkpoint_file,
)
from rpsloc.datasets import adapter_of, check_dataset, manifest_settings
from rpsloc.datasets.cifar import CIFAR
from rpsloc.errors import InputError
from rpsloc.variants import Variant, parse_variant

_IMAGENET = {
    "image_size": 256,
    "crop_size": 224,
    "output_stride": 16,
    "threshold_split": None,
    "mask_resize": "linear",
}
_FINE_GRAINED = {**_IMAGENET, "image_size": 480, "crop_size": 448, "output_stride": 32}
_UNCROPPED = {**_IMAGENET, "image_size": 224}
_DISCOVERY = {**_IMAGENET, "image_size": 480, "crop_size": 480}
_PREDICTION = {**_UNCROPPED, "crop_size": None}

#: Each adapter's evaluation defaults (METHOD.md section 1): resize, centre crop and backbone
#: stride; fine-grained sets at 480/448/32, the rest at ImageNet's 256/224/16 (the synthetic
#: set and CIFAR uncropped at 224). CUB and ImageNet choose the threshold on val, as the
#: authors do; masks are resized bilinearly (CUB's soft segmentations) except OpenImages', which
#: the authors resize nearest-neighbour (rpsloc.masks). A folder of photos is resized to 224
#: without a crop (`crop_size: None`), so the boxes stage sees the whole of every image
#: (docs/boxes.md). The object-discovery sets (VOC, COCO20k) are resized to 480 x 480 without a
#: crop: the peers see the whole image, and CorLoc's ground truth lies anywhere in it.
PROTOCOL_DEFAULTS: dict[str, dict[str, Any]] = {
    "wsol": _IMAGENET,
    "synthetic": _UNCROPPED,
    "cub": {**_FINE_GRAINED, "threshold_split": "val"},
    "ilsvrc": {**_IMAGENET, "threshold_split": "val"},
    "openimages": {**_IMAGENET, "mask_resize": "nearest"},
    "cars": _FINE_GRAINED,
    "dogs": _FINE_GRAINED,
    "aircraft": _FINE_GRAINED,
    **{kind: _UNCROPPED for kind in CIFAR},
    "csv": _IMAGENET,
    "folder": _PREDICTION,
    "voc": _DISCOVERY,
    "coco20k": _DISCOVERY,
}


def adapter_defaults(adapter: str) -> dict[str, Any]:
    """image_size, crop_size (None: no crop), output_stride, threshold_split (None: no
    default) and mask_resize of an adapter: the protocol its dataset is evaluated with unless
    the configuration says otherwise (METHOD.md sections 1 and 3)."""
    adapter_of({"adapter": adapter})
    return dict(PROTOCOL_DEFAULTS[adapter])


@dataclass(frozen=True)
class FeatureSettings:
    """`features:` how the backbone pass runs (docs/architecture.md)."""

    shard_size: int
    batch_size: int
    num_workers: int | str  # DataLoader processes, or `auto` (rpsloc.devices, per job)
    device: str
    precision: str  # fp32, or bf16 autocast (an explicit opt-in)
    warm_process: bool  # jobs share a warm process (rpsloc.extraction_server)


@dataclass(frozen=True)
class EvaluationSettings:
    """`evaluation:` the threshold grid's interval, the IoU thresholds and the figures' size."""

    interval: float
    iou_thresholds: tuple[int, ...]
    overlay_images: int


#: The box-threshold rules of `boxes.threshold` besides a number (docs/boxes.md).
THRESHOLD_RULES = ("auto", "labelled", "otsu")


@dataclass(frozen=True)
class BoxSettings:
    """`boxes:` how the boxes stage thresholds each map: the threshold rule (a rule name of
    THRESHOLD_RULES or a fixed number), the protocol whose BoxAcc a labelled choice maximises,
    the smallest box kept (a fraction of the map's pixels), whether masks are written, and
    whose boxes a dataset's target writes (`method`: its pictured variant's; `all`), and the
    metrics' threshold interval, whose grid a labelled threshold is one of."""

    threshold: str | float
    protocol: str
    min_area: float
    masks: bool
    variants: str = "method"
    interval: float = 0.01

    def variants_of(self, dataset: DatasetSettings) -> tuple[str, ...]:
        """The map variants of a dataset whose boxes its target writes."""
        return dataset.variant_names if self.variants == "all" else (dataset.pictured_variant,)

    def threshold_rule(
        self, dataset: DatasetSettings, split: str, labelled: Collection[str]
    ) -> dict[str, Any]:
        """How the boxes of `split` get their threshold, as the boxes stage reads it:
        `{"rule": "fixed", "value": t}`, `{"rule": "otsu"}` (no ground truth needed) or
        `{"rule": "labelled", "split": s, "protocol": p, "interval": i}`, s being the dataset's
        threshold split, else `split` itself, i the metrics' grid interval. `labelled` names the
        splits with ground truth; `auto` is `labelled` when s is one of them, else `otsu`
        (docs/boxes.md)."""
        if not isinstance(self.threshold, str):
            return {"rule": "fixed", "value": float(self.threshold)}
        if self.threshold == "otsu":
            return {"rule": "otsu"}
        source = dataset.threshold_split or split
        if source in labelled:
            return {
                "rule": "labelled",
                "split": source,
                "protocol": self.protocol,
                "interval": self.interval,
            }
        if self.threshold == "labelled":
            raise InputError(
                f"config: boxes.threshold is 'labelled', but split {source!r} of dataset "
                f"{dataset.name!r} has no ground truth to choose it on; set a number or 'otsu'"
            )
        return {"rule": "otsu"}


@dataclass(frozen=True)
class ExplanationSettings:
    """`explanations:` whether the dataset targets build them (the rankings, the per-test-image
    representers, the selection curve and their figures), how many representers per test image
    and which selection sizes."""

    enabled: bool
    top_k: int
    selection_sizes: tuple[int, ...]
    gallery_images: int


@dataclass(frozen=True)
class PretrainSettings:
    """The `pretrain:` block of a backbone in config/config.yaml (config/schema.yaml), read by
    `rpsloc.pretrain` (docs/pretraining.md)."""

    steps: int = 300  # optimizer steps (the learning-rate schedule spans them)
    time_budget_s: float | None = None  # stop earlier once this many seconds have passed
    batch_size: int = 64  # images per step (2 x batch_size views)
    lr: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 1e-4
    warmup_steps: int = 10  # linear warm-up, then cosine decay to 0 at `steps`
    temperature: float = 0.2  # InfoNCE temperature
    image_size: int = 64  # images are held in memory at image_size^2 and views have this size
    min_scale: float = 0.2  # random resized crop: smallest fraction of the image area
    colour_jitter: float = 0.5  # SimCLR's strength s: jitter (0.8s, 0.8s, 0.8s, 0.2s), p 0.8
    greyscale: float = 0.2  # probability of a greyscale view
    projection_dim: int = 128  # output of the projection head (hidden = feature_dim)
    seed: int = 0  # batches and augmentations; the init comes from the backbone's `seed`
    device: str = "auto"

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> PretrainSettings:
        """Settings from a config block; keys that do not describe training (`dataset`,
        `split`) are the workflow's and are left out."""
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in block.items() if key in known})


@dataclass(frozen=True)
class BackboneSettings:
    """One entry of `backbones:`, with `weights` resolved: a `pretrain` backbone reads the
    checkpoint the pretrain stage writes."""

    name: str
    arch: str
    weights: Weights
    checkpoint_format: str
    seed: int
    options: Mapping[str, Any]  # the arch's sizing keys (e.g. resnet_small's width, depth)
    pretrain: Mapping[str, Any] | None = None  # the `pretrain:` block, for `weights: pretrain`
    max_checkpoint_bytes: int = DEFAULT_MAX_BYTES  # `checkpoints.max_size_gb`

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint file the features stage loads, or None for a random init."""
        return None if self.weights.path is None else str(self.weights.path)

    def model_config(self) -> dict[str, Any]:
        """The entry as `rpsloc.backbones.build.build_backbone` reads it (with the size limit when
        a checkpoint is read)."""
        weights = self.checkpoint or self.weights.kind
        limit = {"max_checkpoint_bytes": self.max_checkpoint_bytes} if self.checkpoint else {}
        return {
            "arch": self.arch,
            "weights": weights,
            "checkpoint_format": self.checkpoint_format,
            "seed": self.seed,
            **self.options,
            **limit,
        }

    def pretrain_settings(self, device: str) -> PretrainSettings:
        """The training settings of a `weights: pretrain` backbone."""
        if self.pretrain is None:
            raise InputError(f"config: backbones.{self.name} has no pretrain block")
        return PretrainSettings.from_config({**self.pretrain, "device": device})


@dataclass(frozen=True)
class ClassifierSettings:
    """One entry of `classifiers:` with its per-arch defaults (docs/classifiers.md)."""

    name: str
    config: Mapping[str, Any]


#: The classifier archs by family (docs/classifiers.md): torchvision's ResNet-50,
#: efficientnet_pytorch's EfficientNets, DINO's ViTs with an eval_linear.py head.
RESNETS = ("resnet50",)
EFFICIENTNETS = tuple(f"efficientnet-b{i}" for i in range(8))
DINO_VITS = ("vit_s8", "vit_s16", "vit_b8", "vit_b16")
CLASSIFIER_ARCHS = (*RESNETS, *EFFICIENTNETS, *DINO_VITS)

#: Each EfficientNet's input resolution (efficientnet_pytorch's `efficientnet_params`).
EFFICIENTNET_RESOLUTION = {
    "efficientnet-b0": 224,
    "efficientnet-b1": 240,
    "efficientnet-b2": 260,
    "efficientnet-b3": 300,
    "efficientnet-b4": 380,
    "efficientnet-b5": 456,
    "efficientnet-b6": 528,
    "efficientnet-b7": 600,
}

#: The authors' resize before the centre crop of EfficientNet-B7 (`Resize((685, 685))`,
#: `CenterCrop((600, 600))` in their datasets); the other EfficientNets at their resolution.
AUTHORS_EFFICIENTNET_RESIZE = {"efficientnet-b7": 685}


def classifier_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A classifier config entry with every default filled in (docs/classifiers.md).

    `num_classes` 1000; `image_size`/`crop_size` 256/224 for ResNet-50 and the ViTs (their
    evaluation transforms; the authors' CUB ResNet-50 wants 448/448, set in its config), the
    model's own resolution for EfficientNet, resized first to 685 for B7 as the authors do;
    DINO's linear-evaluation defaults `n_last_blocks` 4 without the mean patch token for ViT-S,
    1 with it for ViT-B; `checkpoint_format` auto; `seed` 0 (random init only). `weights` is
    `random` or a checkpoint file (`rpsloc.backbones.Weights`): a classifier has learned
    parameters, and none is pretrained here.
    """
    arch = str(config.get("arch", ""))
    if arch not in CLASSIFIER_ARCHS:
        raise InputError(
            f"unknown classifier arch {arch!r}; expected one of {list(CLASSIFIER_ARCHS)}"
        )
    if arch in EFFICIENTNETS:
        resolution = EFFICIENTNET_RESOLUTION[arch]
        resize = AUTHORS_EFFICIENTNET_RESIZE.get(arch, resolution)
        sizes = {"image_size": resize, "crop_size": resolution}
    else:
        sizes = {"image_size": 256, "crop_size": 224}
    defaults: dict[str, Any] = {
        "weights": "random",
        "checkpoint_format": "auto",
        "num_classes": 1000,
        "seed": 0,
        **sizes,
    }
    if arch in DINO_VITS:
        small = arch.startswith("vit_s")
        defaults |= {"n_last_blocks": 4 if small else 1, "avgpool_patchtokens": not small}
    elif "head" in config or "n_last_blocks" in config or "avgpool_patchtokens" in config:
        raise InputError(
            f"classifier {arch!r} takes no head, n_last_blocks or avgpool_patchtokens: those "
            f"describe a DINO linear head ({list(DINO_VITS)})"
        )
    settings = {**defaults, **config}
    if parse_weights(settings["weights"]).kind not in ("random", "file"):
        raise InputError(
            f"classifier {arch!r}: weights must be 'random' or a checkpoint file, got "
            f"{settings['weights']!r}"
        )
    if settings["crop_size"] > settings["image_size"]:
        raise InputError(
            f"classifier {arch!r}: crop_size ({settings['crop_size']}) is larger than "
            f"image_size ({settings['image_size']})"
        )
    return settings


@dataclass(frozen=True)
class DatasetSettings:
    """One entry of `datasets:` with every default resolved."""

    name: str
    adapter: str
    layout: Mapping[str, Any]  # only the keys that decide the manifest
    synthetic: Mapping[str, Any] | None
    train_split: str
    eval_splits: tuple[str, ...]
    threshold_split: str | None
    image_size: int  # evaluated splits: resize, then centre crop (METHOD.md section 1)
    crop_size: int  # image_size when the configuration says `crop_size: null` (no crop)
    train_image_size: int  # the training split: the authors' 224 x 224, no crop, by default
    train_crop_size: int
    mask_resize: str  # how ground-truth masks are resized (rpsloc.masks.MASK_RESIZES)
    output_strides: Mapping[str, int]  # backbone -> the stride its features really have
    backbones: tuple[str, ...]
    variants: tuple[Variant, ...]
    sampling_seed: int
    classifier: str | None
    fingerprint: str = "stat"  # how the manifest tracks its files (rpsloc.tracking)

    @property
    def splits(self) -> tuple[str, ...]:
        """The training split, then the evaluated splits."""
        return (self.train_split, *self.eval_splits)

    @property
    def headline_split(self) -> str | None:
        """The split the figures and the cross-dataset table show: the last evaluated one."""
        return self.eval_splits[-1] if self.eval_splits else None

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(variant.name for variant in self.variants)

    @property
    def pictured_variant(self) -> str:
        """The variant the figures picture: the method's own maps when configured."""
        return "rps" if "rps" in self.variant_names else self.variant_names[0]

    @property
    def explained(self) -> bool:
        """Explanations exist for datasets that evaluate the method's global `w*`."""
        return "rps" in self.variant_names and bool(self.eval_splits)

    def role(self, split: str) -> str:
        """`train` for the split `w*` comes from, `eval` for the evaluated ones."""
        return "train" if split == self.train_split else "eval"

    def geometry(self, split: str) -> tuple[int, int]:
        """(resize, crop) of a split's images: the training split has its own (METHOD.md 1)."""
        if self.role(split) == "train":
            return self.train_image_size, self.train_crop_size
        return self.image_size, self.crop_size


@dataclass(frozen=True)
class Settings:
    """The whole resolved configuration."""

    datasets: Mapping[str, DatasetSettings]
    backbones: Mapping[str, BackboneSettings]
    classifiers: Mapping[str, ClassifierSettings]
    features: FeatureSettings
    evaluation: EvaluationSettings
    explanations: ExplanationSettings
    boxes: BoxSettings
    pretrained: tuple[str, ...] = field(default=())  # backbones the pretrain stage trains


def resolve_settings(config: Mapping[str, Any]) -> Settings:
    """Typed settings of a schema-validated configuration; `InputError` naming the key of the
    first inconsistency. Whether the checkpoint files exist is `require_checkpoint_files`."""
    max_checkpoint_bytes = round(
        config.get("checkpoints", {}).get("max_size_gb", DEFAULT_MAX_BYTES / 1e9) * 1e9
    )
    backbones = {
        name: _backbone(name, entry, config["datasets"], max_checkpoint_bytes)
        for name, entry in config["backbones"].items()
    }
    classifiers = {
        name: _classifier(name, entry) for name, entry in config.get("classifiers", {}).items()
    }
    datasets = {
        name: _dataset(name, entry, backbones, classifiers)
        for name, entry in config["datasets"].items()
    }
    for dataset in datasets.values():
        _check_transfer(dataset, datasets)
    features = config.get("features", {})
    evaluation = config.get("evaluation", {})
    explanations = config.get("explanations", {})
    boxes = config.get("boxes", {})
    return Settings(
        datasets=datasets,
        backbones=backbones,
        classifiers=classifiers,
        features=FeatureSettings(
            shard_size=features.get("shard_size", 1000),
            batch_size=features.get("batch_size", 32),
            num_workers=features.get("num_workers", "auto"),
            device=features.get("device", "auto"),
            precision=features.get("precision", "fp32"),
            warm_process=features.get("warm_process", True),
        ),
        evaluation=EvaluationSettings(
            interval=evaluation.get("cam_curve_interval", 0.01),
            iou_thresholds=tuple(evaluation.get("iou_thresholds", (30, 50, 70))),
            overlay_images=evaluation.get("overlay_images", 8),
        ),
        explanations=ExplanationSettings(
            enabled=explanations.get("enabled", True),
            top_k=explanations.get("top_k", 5),
            selection_sizes=tuple(explanations.get("selection_sizes", ())),
            gallery_images=explanations.get("gallery_images", 4),
        ),
        boxes=BoxSettings(
            threshold=boxes.get("threshold", "auto"),
            protocol=boxes.get("protocol", "benchmark"),
            min_area=boxes.get("min_area", 0.005),
            masks=boxes.get("masks", False),
            variants=boxes.get("variants", "method"),
            interval=evaluation.get("cam_curve_interval", 0.01),
        ),
        pretrained=tuple(
            name for name, backbone in backbones.items() if backbone.weights.kind == "pretrain"
        ),
    )


def _backbone(
    name: str, entry: Mapping[str, Any], datasets: Mapping[str, Any], max_checkpoint_bytes: int
) -> BackboneSettings:
    where = f"config: backbones.{name}"
    weights = parse_weights(entry["weights"])
    block = entry.get("pretrain")
    if weights.kind == "pretrain":
        if block is None:
            raise InputError(
                f"{where}.weights is 'pretrain' but backbones.{name}.pretrain is missing: it "
                "says which dataset to pretrain on (docs/pretraining.md)"
            )
        if block["dataset"] not in datasets:
            raise InputError(
                f"{where}.pretrain.dataset '{block['dataset']}' is not a key of datasets "
                f"({sorted(datasets)})"
            )
        weights = Weights("pretrain", paths.PRETRAIN_CHECKPOINT.format(backbone=name))
    elif block is not None:
        raise InputError(
            f"{where}.pretrain is set but weights is {entry['weights']!r}: set weights to "
            "'pretrain' to use the pretrained backbone, or remove the block"
        )
    options = {
        key: value
        for key, value in entry.items()
        if key not in ("arch", "weights", "checkpoint_format", "seed", "pretrain")
    }
    return BackboneSettings(
        name=name,
        arch=entry["arch"],
        weights=weights,
        checkpoint_format=entry.get("checkpoint_format", "auto"),
        seed=entry.get("seed", 0),
        options=options,
        pretrain=block,
        max_checkpoint_bytes=max_checkpoint_bytes,
    )


def require_checkpoint_files(settings: Settings) -> None:
    """Every checkpoint file the configured datasets need exists: backbone `weights` of kind
    `file` and their classifier's files. The workflow runs this before it builds any job, so a
    missing file is a `CheckpointError` naming the file, its config key and who publishes the
    format, not a failure hours later (METHOD.md 4)."""
    for dataset in settings.datasets.values():
        for name in dataset.backbones:
            backbone = settings.backbones[name]
            if backbone.weights.kind == "file":
                require_checkpoint_file(
                    backbone.weights.path,
                    backbone.arch,
                    backbone.checkpoint_format,
                    key=f"backbones.{name}.weights",
                )
        if dataset.classifier is not None:
            classifier_checkpoints(settings.classifiers[dataset.classifier])


def classifier_checkpoints(classifier: ClassifierSettings) -> list[str]:
    """The checkpoint files a classifier reads (`weights` when a file, and a DINO linear
    `head`), each checked to exist: a missing one is a `CheckpointError` naming the file, its
    config key and the project that publishes its format."""
    where, config = f"classifiers.{classifier.name}", classifier.config
    arch = config["arch"]
    formats = EFFICIENTNET_FORMATS if arch in EFFICIENTNETS else RESNET_FORMATS
    files = []
    weights = parse_weights(config["weights"])
    if weights.kind == "file":
        fmt = str(config.get("checkpoint_format", "auto"))
        files.append(require_checkpoint_file(weights.path, arch, fmt, formats, f"{where}.weights"))
    if config.get("head") is not None:
        files.append(
            require_checkpoint_file(
                config["head"], arch, "dino_linear", DINO_LINEAR_FORMATS, f"{where}.head"
            )
        )
    return [str(path) for path in files]


def _classifier(name: str, entry: Mapping[str, Any]) -> ClassifierSettings:
    where = f"classifiers.{name}"
    try:
        settings = classifier_settings(entry)
    except InputError as error:
        raise InputError(f"config: {where}: {error}") from error
    return ClassifierSettings(name, settings)


def _dataset(
    name: str,
    entry: Mapping[str, Any],
    backbones: Mapping[str, BackboneSettings],
    classifiers: Mapping[str, ClassifierSettings],
) -> DatasetSettings:
    where = f"datasets.{name}"
    check_dataset(name, entry)
    defaults = adapter_defaults(entry["adapter"])
    image_size = entry.get("image_size", defaults["image_size"])
    crop_size = entry.get("crop_size", defaults["crop_size"])
    if crop_size is None:  # no centre crop: the whole resized image
        crop_size = image_size
    if crop_size > image_size:
        raise InputError(
            f"config: {where}.crop_size ({crop_size}) is larger than image_size ({image_size})"
        )
    train_image_size = entry.get("train_image_size", 224)
    train_crop_size = entry.get("train_crop_size") or train_image_size
    if train_crop_size > train_image_size:
        raise InputError(
            f"config: {where}.train_crop_size ({train_crop_size}) is larger than "
            f"train_image_size ({train_image_size})"
        )
    eval_splits = tuple(entry["eval_splits"])
    if entry["train_split"] in eval_splits:
        raise InputError(
            f"config: {where}.train_split '{entry['train_split']}' is also listed in "
            "eval_splits; w* must come from images it is not tested on"
        )
    threshold_split = entry.get("threshold_split")
    if threshold_split is None and defaults.get("threshold_split") in eval_splits:
        threshold_split = defaults["threshold_split"]
    if threshold_split is not None and threshold_split not in eval_splits:
        raise InputError(
            f"config: {where}.threshold_split '{threshold_split}' is not one of "
            f"eval_splits {list(eval_splits)}"
        )
    for backbone in entry["backbones"]:
        if backbone not in backbones:
            raise InputError(
                f"config: {where}.backbones names '{backbone}', which is not a key of "
                f"backbones ({sorted(backbones)})"
            )
    classifier = entry.get("classifier")
    if classifier is not None and classifier not in classifiers:
        raise InputError(
            f"config: {where}.classifier names '{classifier}', which is not a key of "
            f"classifiers ({sorted(classifiers)})"
        )
    variants = tuple(_variant(name, variant, classifier) for variant in entry["variants"])
    for variant in variants:
        if variant.discovery_input != "cls_attention":
            continue
        for backbone in entry["backbones"]:
            if not architecture(backbones[backbone].arch).patch_grid:
                raise InputError(
                    f"config: {where}.variants '{variant.name}' reads a ViT's CLS attention; "
                    f"backbone '{backbone}' ({backbones[backbone].arch}) has none"
                )
    requested_stride = entry.get("output_stride", defaults["output_stride"])
    strides = {
        backbone: _stride(where, backbones[backbone], requested_stride)
        for backbone in entry["backbones"]
    }
    _check_variants_and_geometry(where, entry["variants"], crop_size, strides)
    return DatasetSettings(
        name=name,
        adapter=entry["adapter"],
        layout=manifest_settings(entry),
        synthetic=entry.get("synthetic"),
        train_split=entry["train_split"],
        eval_splits=eval_splits,
        threshold_split=threshold_split,
        image_size=image_size,
        crop_size=crop_size,
        train_image_size=train_image_size,
        train_crop_size=train_crop_size,
        mask_resize=entry.get("mask_resize", defaults["mask_resize"]),
        output_strides=strides,
        backbones=tuple(entry["backbones"]),
        variants=variants,
        sampling_seed=entry.get("sampling_seed", 0),
        classifier=classifier,
        fingerprint=entry.get("fingerprint", "stat"),
    )


def _check_variants_and_geometry(
    where: str, variants: list[str], crop_size: int, strides: Mapping[str, int]
) -> None:
    """Each variant listed once (one summary row each), and a crop that spans at least two
    feature cells across for every backbone: a one-cell map is constant, normalises to zeros
    and finds no box, so it would score 0.0 instead of failing."""
    first: dict[str, int] = {}
    for position, variant in enumerate(variants, start=1):
        if variant in first:
            raise InputError(
                f"config: {where}.variants lists {variant!r} twice (entries {first[variant]} "
                f"and {position}); each variant is one row of the summary"
            )
        first[variant] = position
    for backbone, stride in strides.items():
        if crop_size < 2 * stride:
            raise InputError(
                f"config: {where}.crop_size {crop_size} gives backbone {backbone} (output "
                f"stride {stride}) a feature map of one cell across, whose activation map is "
                f"constant and finds no box; expected crop_size >= {2 * stride}"
            )


def _stride(where: str, backbone: BackboneSettings, requested: int) -> int:
    try:
        return effective_output_stride(backbone.arch, requested)
    except InputError as error:
        raise InputError(f"config: {where}, backbone {backbone.name}: {error}") from error


def _variant(dataset: str, name: str, classifier: str | None) -> Variant:
    where = f"config: datasets.{dataset}.variants '{name}'"
    try:
        variant = parse_variant(name)
    except ValueError as error:
        raise InputError(f"{where}: {error}") from error
    if variant.needs_classifier and classifier is None:
        raise InputError(
            f"{where} needs datasets.{dataset}.classifier (whose top-1 picks or builds w*_k)"
        )
    return variant


def _check_transfer(dataset: DatasetSettings, datasets: Mapping[str, DatasetSettings]) -> None:
    """A transferred `w*` (`rps-from-<base>`) needs the base dataset and its backbones."""
    for variant in dataset.variants:
        base = variant.base_dataset
        if base is None:
            continue
        where = f"config: datasets.{dataset.name}.variants '{variant.name}'"
        if base not in datasets:
            raise InputError(f"{where}: base dataset '{base}' is not a key of datasets")
        missing = set(dataset.backbones) - set(datasets[base].backbones)
        if missing:
            raise InputError(
                f"{where}: base dataset '{base}' does not list backbones {sorted(missing)}, so "
                "it has no w* for them"
            )
