"""Names of the map variants a dataset's config lists, and what each one needs (METHOD.md
section 1, variants). One variant is one row of the summary.

    rps                      global w* from the dataset's own training split
    rps-r0.1                 ... from a random 10 % of it (fixed seed)
    rps_classwise_gt         one w*_k per class, the test image's ground-truth class picks it
    rps_classwise_top1       ... a classifier's top-1 prediction picks it
    rps_classwise_pred       one w*_k per class of the training images as the classifier
                             predicts them (their labels are never read), the test image's
                             ground-truth class picks it: the authors' ImageNet setting
    rps_classwise_gt-r0.1    class-wise with a per-class quota of floor(N r / K) images
    rps-from-cifar10         w* computed on another configured dataset (zero-shot transfer)
    caam, ddt, centre_gaussian   baselines on the same cached features
    lost, tokencut, dino_attention   the object-discovery peers on the same features pass
                             (rpsloc.discovery); LOST and TokenCut give one box per image

The grammar is written once, here: `PATTERN` parses names, `WILDCARD` (the same regex without
groups) constrains the workflow's `{variant}` wildcard, `SELECTION_WILDCARD` its `{selection}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BASELINES = ("caam", "ddt", "centre_gaussian")
#: The object-discovery peers (rpsloc.discovery) and what each reads from a ViT's last block
#: (rpsloc.readers.DISCOVERY_INPUTS); LOST and TokenCut fall back to the feature map itself.
PEERS = {"lost": "keys", "tokencut": "keys", "dino_attention": "cls_attention"}
#: The peers that give one box per image rather than a map to threshold.
BOX_ONLY = ("lost", "tokencut")
#: Where a class-wise variant's classes come from: `gt` and `top1` pick the test image's
#: predictor by its label or a classifier's top-1; `pred` builds the predictors from the
#: classifier's top-1 on the training images.
CLASS_SOURCES = ("gt", "top1", "pred")
_RATIO = r"0?\.[0-9]+|1"
_DATASET = r"[A-Za-z][A-Za-z0-9_]*"
PATTERN = re.compile(
    rf"^rps(?:_classwise_(?P<classwise>{'|'.join(CLASS_SOURCES)}))?"
    rf"(?:-r(?P<ratio>{_RATIO}))?"
    rf"(?:-from-(?P<base>{_DATASET}))?$"
)
WILDCARD = "|".join(
    [
        *BASELINES,
        *PEERS,
        re.sub(r"\(\?P<\w+>", "(?:", PATTERN.pattern.removeprefix("^").removesuffix("$")),
    ]
)
SELECTION_WILDCARD = rf"(?:global|classwise|classwise-pred)(?:-r(?:{_RATIO}))?"


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "rps", a baseline's or a peer's name
    class_source: str | None = None  # None (global w*), or one of CLASS_SOURCES
    sampling_ratio: float = 1.0
    base_dataset: str | None = None

    @property
    def needs_representer(self) -> bool:
        return self.kind == "rps"

    @property
    def representer_selection(self) -> str:
        """The representer file's name: `global`, `classwise` or `classwise-pred` (classes
        predicted by the classifier), with `-r<ratio>` when sampled."""
        if self.class_source is None:
            mode = "global"
        else:
            mode = "classwise-pred" if self.class_source == "pred" else "classwise"
        return mode if self.sampling_ratio == 1 else f"{mode}-r{self.sampling_ratio:g}"

    @property
    def discovery_input(self) -> str | None:
        """What a peer reads from a ViT's last block (`PEERS`); None for the others."""
        return PEERS.get(self.kind)

    @property
    def box_only(self) -> bool:
        """Whether the method gives its own box (scored without a threshold sweep)."""
        return self.kind in BOX_ONLY

    @property
    def needs_classifier(self) -> bool:
        """Whether a classifier's predictions pick or build the class-wise predictors."""
        return self.class_source in ("top1", "pred")


def parse_variant(name: str) -> Variant:
    """The variant a name stands for; an error that lists the accepted forms otherwise."""
    if name in BASELINES or name in PEERS:
        return Variant(name, name)
    match = PATTERN.match(name)
    if not match:
        raise ValueError(
            f"unknown map variant {name!r}; expected one of {', '.join([*BASELINES, *PEERS])} or "
            f"rps[_classwise_{'|_classwise_'.join(CLASS_SOURCES)}][-r<ratio>][-from-<dataset>]"
        )
    ratio = float(match["ratio"]) if match["ratio"] else 1.0
    if not 0 < ratio <= 1:
        raise ValueError(f"variant {name!r}: sampling ratio must be in (0, 1]")
    if match["base"] and match["classwise"]:
        raise ValueError(
            f"variant {name!r}: class-wise predictors need the test set's classes; "
            "transfer from another dataset uses a global w*"
        )
    return Variant(name, "rps", match["classwise"], ratio, match["base"])


@dataclass(frozen=True)
class RepresenterSpec:
    """What a representer file is computed from (its name, e.g. `classwise-pred-r0.1`)."""

    classwise: bool
    predicted_classes: bool  # the classifier's top-1 on the training images, not their labels
    sampling_ratio: float


def parse_selection(selection: str) -> RepresenterSpec:
    """The `RepresenterSpec` of a representer file name such as `classwise-r0.1`."""
    if not re.fullmatch(SELECTION_WILDCARD, selection):
        raise ValueError(f"unknown representer selection {selection!r}")
    mode, _, ratio = selection.partition("-r")
    return RepresenterSpec(
        mode != "global", mode == "classwise-pred", float(ratio) if ratio else 1.0
    )
