"""Names of the map variants a dataset's config lists, and what each one needs (METHOD.md
section 1, variants). One variant is one row of the summary.

    rps                      global w* from the dataset's own training split
    rps-r0.1                 ... from a random 10 % of it (fixed seed)
    rps_classwise_gt         one w*_k per class, the test image's ground-truth class picks it
    rps_classwise_top1       ... a classifier's top-1 prediction picks it
    rps_classwise_gt-r0.1    class-wise with a per-class quota of floor(N r / K) images
    rps-from-cifar10         w* computed on another configured dataset (zero-shot transfer)
    caam, ddt, centre_gaussian   baselines on the same cached features
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BASELINES = ("caam", "ddt", "centre_gaussian")
PATTERN = re.compile(
    r"^rps(?:_classwise_(?P<classwise>gt|top1))?"
    r"(?:-r(?P<ratio>0?\.[0-9]+|1))?"
    r"(?:-from-(?P<base>[A-Za-z][A-Za-z0-9_]*))?$"
)
WILDCARD = "|".join(BASELINES) + r"|rps(?:_classwise_(?:gt|top1))?(?:-r[0-9.]+)?(?:-from-\w+)?"


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "rps" or a baseline name
    class_source: str | None = None  # None (global w*), "gt" or "top1"
    sampling_ratio: float = 1.0
    base_dataset: str | None = None

    @property
    def needs_representer(self) -> bool:
        return self.kind == "rps"

    @property
    def representer_selection(self) -> str:
        """The representer file's name: `global`/`classwise`, with `-r<ratio>` when sampled."""
        mode = "global" if self.class_source is None else "classwise"
        return mode if self.sampling_ratio == 1 else f"{mode}-r{self.sampling_ratio:g}"


def parse_variant(name: str) -> Variant:
    """The variant a name stands for; an error that lists the accepted forms otherwise."""
    if name in BASELINES:
        return Variant(name, name)
    match = PATTERN.match(name)
    if not match:
        raise ValueError(
            f"unknown map variant {name!r}; expected one of {', '.join(BASELINES)} or "
            "rps[_classwise_gt|_classwise_top1][-r<ratio>][-from-<dataset>]"
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


def parse_selection(selection: str) -> tuple[bool, float]:
    """(classwise, sampling ratio) of a representer file name such as `classwise-r0.1`."""
    mode, _, ratio = selection.partition("-r")
    if mode not in ("global", "classwise"):
        raise ValueError(f"unknown representer selection {selection!r}")
    return mode == "classwise", float(ratio) if ratio else 1.0
