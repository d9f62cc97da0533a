"""Checkpoints as projects publish them, read safely and loaded strictly (METHOD.md section 4).

Checkpoints are unpickled with `weights_only=True`: a file that needs arbitrary code to load is
refused, never run. A format says where a project keeps the backbone in its file (container key,
key prefix); the tensors left after stripping them must fit the architecture exactly, only heads
may be missing or extra, and every one of them must be finite. Nothing is ever downloaded: a
missing file is an error naming who publishes its format.

Before anything is unpickled, `read_checkpoint` tells a damaged file from a foreign one and from
an unsafe one, since each asks the user for something else: copy a truncated file again, bring
the right file, or re-save a trusted one. A file whose tensors would take more than the size
limit in memory is refused from its zip directory alone.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rpsloc.backbones import arch_options, architecture
from rpsloc.errors import CheckpointError, InputError
from rpsloc.io import file_sha256

__all__ = [
    "CHECKPOINT_FORMATS",
    "DEFAULT_MAX_BYTES",
    "FORMAT_ALIASES",
    "CheckpointFormat",
    "LoadReport",
    "apply_checkpoint_state",
    "check_checkpoint",
    "fit_checkpoint",
    "load_checkpoint_state",
    "read_checkpoint",
    "require_checkpoint_file",
]


@dataclass(frozen=True)
class CheckpointFormat:
    """Where a project keeps the backbone weights in its checkpoint (METHOD.md 4 table)."""

    name: str
    container: str | None  # key of the state dict in the file; None: the file is the state dict
    prefix: str  # prefix of the backbone keys, stripped before loading
    published_by: str


CHECKPOINT_FORMATS: dict[str, CheckpointFormat] = {
    f.name: f
    for f in (
        CheckpointFormat(
            "moco_v2", "state_dict", "module.encoder_q.", "facebookresearch/moco (MoCo v1, v2)"
        ),
        CheckpointFormat(
            "moco_v2_converted",
            "state_dict",
            "",
            "WXinlong/DenseCL (DenseCL), xieenze/DetCo (DetCo), MoCo v2 converted",
        ),
        CheckpointFormat(
            "moco_v3", "state_dict", "module.", "facebookresearch/moco-v3 (linear-eval checkpoint)"
        ),
        CheckpointFormat(
            "torchvision",
            None,
            "",
            "pytorch/vision (supervised), facebookresearch/dino (DINO ResNet-50 and ViTs), "
            "BYOL converted to torchvision names",
        ),
        CheckpointFormat("simsiam", "state_dict", "module.encoder.", "facebookresearch/simsiam"),
        CheckpointFormat("supcon", "model", "module.encoder.", "HobbitLong/SupContrast"),
        CheckpointFormat("ccam", "state_dict", "backbone.", "CVI-SZU/CCAM"),
        CheckpointFormat(
            "dawsol", "state_dict_extractor", "", "zh460045050/DA-WSOL_CVPR2022 (DA-WSOL)"
        ),
        CheckpointFormat(
            "dataparallel",
            None,
            "module.",
            "any model saved from nn.DataParallel (e.g. CUB-trained ResNet-50 classifiers)",
        ),
    )
}

#: Other names users may write for a format.
FORMAT_ALIASES: dict[str, str] = {
    "moco_v1": "moco_v2",
    "densecl": "moco_v2_converted",
    "detco": "moco_v2_converted",
    "dino": "torchvision",
    "byol": "torchvision",
    "supervised": "torchvision",
}

#: First key component of classification / projection heads: may be missing or extra.
HEAD_MODULES = frozenset({"fc", "head", "heads", "projector", "predictor", "classifier"})

#: Objects besides tensors and containers that a checkpoint may hold (all inert).
SAFE_GLOBALS: list[Any] = [argparse.Namespace]

#: The most bytes a checkpoint may hold uncompressed (its tensors in memory) unless configured
#: otherwise (`checkpoints.max_size_gb`): a full DINO ViT-B/8 training checkpoint (student,
#: teacher and optimizer state) holds 1.4 GB.
DEFAULT_MAX_BYTES = 2 * 10**9


@dataclass
class LoadReport:
    """What loading a checkpoint did: `rpsloc weights check` prints its `summary()`, and every
    stage that loads one logs it."""

    format: str
    n_loaded: int
    ignored_keys: list[str]
    checkpoint_sha256: str
    path: str = ""
    arch: str = ""
    defaulted_keys: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    kind: str = "backbone"  # what the tensors are: "backbone", "classifier", "linear head"
    ignored_entries: list[str] = field(default_factory=list)  # one line per ignored key
    outside_container: list[str] = field(default_factory=list)  # top-level entries not read

    def summary(self) -> str:
        """Lines for humans: file, hash, format, counts, and every entry that was not loaded
        with its shape and size, so nothing in the file is dropped unseen."""
        lines = [
            f"checkpoint {self.path}",
            f"  sha256 {self.checkpoint_sha256}",
            f"  format {self.format}, arch {self.arch}{_described(self.options)}: "
            f"{self.n_loaded} {self.kind} tensors loaded",
        ]
        if self.defaulted_keys:
            lines.append(
                f"  {len(self.defaulted_keys)} BatchNorm num_batches_tracked counters absent "
                "(unused in eval mode, set to 0)"
            )
        lines.append(
            f"  {len(self.ignored_keys)} checkpoint entries ignored (heads, or outside the "
            f"{self.kind} prefix){':' if self.ignored_entries else ''}"
        )
        lines += [f"    {entry}" for entry in self.ignored_entries]
        if self.outside_container:
            lines.append(f"  not read (outside the container): {', '.join(self.outside_container)}")
        return "\n".join(lines)


def _entry(value: Any) -> str:
    """What a checkpoint entry holds, for the report: a tensor's shape, dtype and size."""
    if isinstance(value, torch.Tensor):
        size = value.numel() * value.element_size()
        return (
            f"tensor {list(value.shape)} {str(value.dtype).removeprefix('torch.')}, {_bytes(size)}"
        )
    if isinstance(value, Mapping):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def _bytes(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _described(options: Mapping[str, Any]) -> str:
    return f" ({', '.join(f'{k} {v}' for k, v in options.items())})" if options else ""


def _first(keys: list[str], n: int = 5) -> str:
    if not keys:
        return ""
    more = f", ... ({len(keys) - n} more)" if len(keys) > n else ""
    return ": " + ", ".join(keys[:n]) + more


def _publishers(checkpoint_format: str, formats: Mapping[str, CheckpointFormat]) -> str:
    name = FORMAT_ALIASES.get(checkpoint_format, checkpoint_format)
    if name in formats:
        return f"{checkpoint_format} checkpoints are published by {formats[name].published_by}"
    return "checkpoints of the supported formats are published by: " + "; ".join(
        f"{f.name}: {f.published_by}" for f in formats.values()
    )


def require_checkpoint_file(
    path: str | Path,
    arch: str,
    checkpoint_format: str = "auto",
    formats: Mapping[str, CheckpointFormat] = CHECKPOINT_FORMATS,
    key: str = "backbone `weights`",
) -> Path:
    """`path` if it is a file; else a `CheckpointError` naming the file, the config `key` that
    expects it and the projects that publish the format (nothing is downloaded)."""
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise CheckpointError(
            f"checkpoint file {path} {what}: the config's {key} for arch {arch!r} expects it "
            f"there. Nothing is downloaded; {_publishers(checkpoint_format, formats)}."
        )
    return path


def read_checkpoint(
    path: str | Path,
    arch: str,
    checkpoint_format: str = "auto",
    formats: Mapping[str, CheckpointFormat] = CHECKPOINT_FORMATS,
    key: str = "backbone `weights`",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Any:
    """torch.load with weights_only=True; anything beyond tensors and SAFE_GLOBALS is refused.
    A missing file is reported by `require_checkpoint_file`; an empty, truncated, foreign or
    too large file by `_check_container` before it is unpickled; and a pickle that cannot be
    read says whether it asked for code (naming the globals) or is damaged."""
    path = require_checkpoint_file(path, arch, checkpoint_format, formats, key)
    _check_container(path, max_bytes)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _globals_asked_for(path, exc)
        if not unsafe:
            raise CheckpointError(
                f"checkpoint {path} is damaged: its pickle cannot be read "
                f"({_first_line(exc)}); this is not a refusal of unsafe code. Copy the file "
                "again from its source"
            ) from exc
        raise CheckpointError(
            f"checkpoint {path} needs arbitrary code to unpickle (it asks for "
            f"{', '.join(unsafe)}) and was not loaded: only tensors, plain containers and "
            "argparse.Namespace are accepted (torch.load weights_only=True). If you trust its "
            "source, re-save only its tensors with torch.save."
        ) from exc
    except Exception as exc:  # a zip entry or storage cut short or altered
        raise CheckpointError(
            f"checkpoint {path} is damaged: torch.load could not read it "
            f"({type(exc).__name__}: {_first_line(exc)}). Copy the file again from its source"
        ) from exc


def _check_container(path: Path, max_bytes: int) -> None:
    """The file is a PyTorch checkpoint (a zip archive with a `data.pkl`, torch.save's format
    since PyTorch 1.6, or the legacy pickle before it), complete, and holds at most
    `max_bytes` uncompressed, all read from its first bytes and zip directory only."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(512)
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): copy it again")
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                entries = archive.infolist()
        except (zipfile.BadZipFile, OSError) as error:
            raise CheckpointError(
                f"checkpoint {path} is truncated or damaged: it starts as a zip archive "
                f"(torch.save's format) but its directory cannot be read ({error}; {size} "
                "bytes on disk). Copy it again from its source"
            ) from error
        names = [entry.filename for entry in entries]
        if not any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            raise CheckpointError(
                f"checkpoint {path} is a zip archive but not a PyTorch checkpoint: none of "
                f"its {len(names)} entries is a data.pkl (first: {names[:5]})"
            )
        inflated = sum(entry.file_size for entry in entries)
    elif head[0] == 0x80:  # a pickle of protocol 2 or later: torch.save before PyTorch 1.6
        inflated = size
    else:
        raise CheckpointError(
            f"checkpoint {path} is not a PyTorch checkpoint: it is {_file_kind(head)} (first "
            f"bytes {head[:8]!r}), where torch.save writes a zip archive, or a pickle before "
            "PyTorch 1.6"
        )
    if inflated > max_bytes:
        raise CheckpointError(
            f"checkpoint {path} holds {_bytes(inflated)} uncompressed ({_bytes(size)} on "
            f"disk), more than the limit of {_bytes(max_bytes)}, and was not loaded. If the "
            "file is what you meant, raise checkpoints.max_size_gb in the config (or "
            "--max-size-gb of rpsloc weights check)"
        )


#: First bytes of files that users mistake for checkpoints, and what to tell them.
_MAGIC = (
    (b"\x89HDF", "an HDF5 file"),
    (b"\x1f\x8b", "a gzip-compressed file (decompress it first)"),
    (b"<", "text that looks like HTML or XML (a download that saved an error page?)"),
)


def _file_kind(head: bytes) -> str:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "a tar archive (unpack it: the checkpoint may be inside)"
    header_length = int.from_bytes(head[:8], "little")
    if 0 < header_length < 10**8 and head[8:10] == b'{"':
        return "a safetensors file (save its tensors with torch.save)"
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return "a text file"
    return "unrecognised binary data"


def _globals_asked_for(path: Path, error: pickle.UnpicklingError) -> list[str]:
    """The globals a refused pickle asks for: all of them from a zip checkpoint's pickle,
    else the one `weights_only` stopped at."""
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a legacy (non-zip) file: only the error names a global
        unsafe = []
    return unsafe or re.findall(r"GLOBAL ([\w.]+)", str(error))[:1]


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _meta_model(arch: str, options: Mapping[str, Any]) -> nn.Module:
    """`arch` built on the meta device (names and shapes; no memory, no init) at its first
    output stride: no parameter's shape depends on the stride."""
    record = architecture(arch)
    with torch.device("meta"):
        return record.factory(record.output_strides[0], **options)


def _expected_shapes(arch: str, options: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every parameter and buffer the architecture needs, with its shape."""
    return {k: tuple(v.shape) for k, v in _meta_model(arch, options).state_dict().items()}


@dataclass
class _Fit:
    fmt: CheckpointFormat
    state: dict[str, torch.Tensor]
    ignored: list[str]
    defaulted: list[str]
    missing: list[str]
    unexpected: list[str]
    misshaped: list[str]
    kind: str = "backbone"
    ignored_entries: list[str] = field(default_factory=list)
    outside_container: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)

    def describe(self, path: Path, n_expected: int) -> str:
        container = "the file itself" if self.fmt.container is None else repr(self.fmt.container)
        return (
            f"checkpoint {path} as format {self.fmt.name} (container {container}, prefix "
            f"{self.fmt.prefix!r}): {len(self.state)} of {n_expected} {self.kind} tensors match; "
            f"{len(self.missing)} missing{_first(self.missing)}; "
            f"{len(self.unexpected)} unexpected{_first(self.unexpected)}; "
            f"{len(self.misshaped)} with the wrong shape{_first(self.misshaped)}"
        )


def _fit(
    raw: Any, fmt: CheckpointFormat, expected: Mapping[str, tuple[int, ...]], kind: str
) -> _Fit | None:
    """Strip container and prefix, and compare with the architecture; None if not applicable."""
    if not isinstance(raw, Mapping):
        return None
    source = raw if fmt.container is None else raw.get(fmt.container)
    if not isinstance(source, Mapping):
        return None
    keys = [str(k) for k in source]
    if fmt.prefix and not any(k.startswith(fmt.prefix) for k in keys):
        return None
    state: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    entries: list[str] = []
    unexpected: list[str] = []
    misshaped: list[str] = []
    wrong: set[str] = set()
    for key, value in source.items():
        key = str(key)
        name = key[len(fmt.prefix) :]
        if not key.startswith(fmt.prefix) or (
            name not in expected and name.split(".", 1)[0] in HEAD_MODULES
        ):
            ignored.append(key)
            why = "a head" if key.startswith(fmt.prefix) else f"outside the prefix {fmt.prefix!r}"
            entries.append(f"{key}: {_entry(value)} ({why})")
        elif name not in expected:
            unexpected.append(key)
        elif not isinstance(value, torch.Tensor):
            wrong.add(name)
            misshaped.append(f"{key} (a {type(value).__name__}, not a tensor)")
        elif tuple(value.shape) != expected[name]:
            wrong.add(name)
            misshaped.append(f"{key} (expected {list(expected[name])}, found {list(value.shape)})")
        else:
            state[name] = value
    absent = [k for k in expected if k not in state and k not in wrong]
    defaulted = [k for k in absent if k.endswith("num_batches_tracked")]
    missing = [fmt.prefix + k for k in absent if not k.endswith("num_batches_tracked")]
    outside = [
        f"{k} ({_entry(v)})"
        for k, v in raw.items()
        if fmt.container is not None and k != fmt.container
    ]
    return _Fit(
        fmt, state, ignored, defaulted, missing, unexpected, misshaped, kind, entries, outside
    )


def _resolve_format(
    checkpoint_format: str, formats: Mapping[str, CheckpointFormat] = CHECKPOINT_FORMATS
) -> CheckpointFormat | None:
    if checkpoint_format == "auto":
        return None
    name = FORMAT_ALIASES.get(checkpoint_format, checkpoint_format)
    if name not in formats:
        aliases = [alias for alias, target in FORMAT_ALIASES.items() if target in formats]
        raise InputError(
            f"unknown checkpoint_format {checkpoint_format!r}; expected 'auto' or one of "
            f"{sorted([*formats, *aliases])}"
        )
    return formats[name]


def _recorded_options(raw: Any, arch: str) -> dict[str, Any]:
    """The `arch_options` a checkpoint records for `arch` (rpsloc.pretrain writes them)."""
    if isinstance(raw, Mapping) and raw.get("arch") == arch:
        recorded = raw.get("arch_options", {})
        if isinstance(recorded, Mapping):
            return {str(key): value for key, value in recorded.items()}
    return {}


def load_checkpoint_state(
    path: Path,
    arch: str,
    checkpoint_format: str = "auto",
    options: Mapping[str, Any] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The backbone state dict of a checkpoint, checked strictly against `arch` (METHOD.md 4).

    The container key and key prefix of `checkpoint_format` are stripped; every backbone
    parameter and buffer must then be present with the right shape (BatchNorm's
    `num_batches_tracked` may be absent); only heads (`fc`, `head`, projector, predictor,
    classifier) may be missing or extra, and keys outside the prefix are ignored. With "auto"
    every applicable format is tried and exactly one must fit. `options` size a configurable
    architecture (its record's `options`); None takes those the checkpoint records, else the
    defaults. A file holding more than `max_bytes` uncompressed is refused before it is read.
    Raises `CheckpointError`.
    """
    path = Path(path)
    architecture(arch)
    _resolve_format(checkpoint_format)
    raw = read_checkpoint(path, arch, checkpoint_format, max_bytes=max_bytes)
    if options is None:
        options = _recorded_options(raw, arch)
    options = arch_options(arch, options)
    expected = _expected_shapes(arch, options)
    return fit_checkpoint(raw, path, arch, expected, checkpoint_format, options=options)


def fit_checkpoint(
    raw: Any,
    path: Path,
    arch: str,
    expected: Mapping[str, tuple[int, ...]],
    checkpoint_format: str = "auto",
    formats: Mapping[str, CheckpointFormat] = CHECKPOINT_FORMATS,
    kind: str = "backbone",
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The state dict of a checkpoint `raw` (read from `path`) that fits the parameter and
    buffer shapes `expected` of `arch`, in `checkpoint_format` or, with "auto", in exactly one
    of `formats` (the rules of `load_checkpoint_state`). `kind` names the tensors in messages.
    Raises `CheckpointError`."""
    path = Path(path)
    fmt = _resolve_format(checkpoint_format, formats)
    if fmt is not None:
        fit = _fit(raw, fmt, expected, kind)
        if fit is None:
            top = list(raw)[:10] if isinstance(raw, Mapping) else type(raw).__name__
            raise CheckpointError(
                f"checkpoint {path} is not in format {fmt.name}: it needs container "
                f"{fmt.container!r} and keys with prefix {fmt.prefix!r}; top-level entries: {top}"
            )
        if not fit.ok:
            raise CheckpointError(
                f"{fit.describe(path, len(expected))}; only heads may be missing or extra"
            )
    else:
        fits = [f for f in (_fit(raw, x, expected, kind) for x in formats.values()) if f]
        good = [f for f in fits if f.ok]
        if len(good) > 1:
            raise CheckpointError(
                f"checkpoint {path} fits several formats for arch {arch!r}: "
                f"{[f.fmt.name for f in good]}; set the {kind}'s checkpoint_format to the "
                "project that published it"
            )
        if not good:
            top = list(raw)[:10] if isinstance(raw, Mapping) else type(raw).__name__
            if not fits:
                raise CheckpointError(
                    f"checkpoint {path} matches no known format's container and prefix "
                    f"(top-level entries: {top}); known formats: {sorted(formats)}"
                )
            best = max(fits, key=lambda f: len(f.state))
            raise CheckpointError(
                f"checkpoint {path} does not fit arch {arch!r} in any format "
                f"(tried {[f.fmt.name for f in fits]}). "
                f"Closest: {best.describe(path, len(expected))}"
            )
        fit = good[0]
    _require_finite(fit, path)
    report = LoadReport(
        format=fit.fmt.name,
        n_loaded=len(fit.state),
        ignored_keys=fit.ignored,
        checkpoint_sha256=file_sha256(path),
        path=str(path),
        arch=arch,
        defaulted_keys=fit.defaulted,
        options=dict(options or {}),
        kind=kind,
        ignored_entries=fit.ignored_entries,
        outside_container=fit.outside_container,
    )
    return fit.state, report


def _require_finite(fit: _Fit, path: Path) -> None:
    """Every loaded floating-point tensor is finite: one NaN weight turns every feature NaN,
    and the features stage would then blame the images."""
    bad = [
        name
        for name, value in fit.state.items()
        if value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    if bad:
        first = fit.state[bad[0]]
        more = f"; {len(bad) - 1} more tensors are not finite{_first(bad[1:])}" if bad[1:] else ""
        raise CheckpointError(
            f"checkpoint {path}: {fit.kind} tensor {fit.fmt.prefix}{bad[0]} holds "
            f"{int(torch.isnan(first).sum())} NaN and {int(torch.isinf(first).sum())} infinite "
            f"values of {first.numel()}{more}. The file is damaged or was saved from a run "
            "that diverged; a model with these weights computes NaN features"
        )


def apply_checkpoint_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load `state` strictly; absent `num_batches_tracked` counters are set to 0."""
    full = dict(state)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in full:
            full[key] = torch.zeros_like(value)
    model.load_state_dict(full, strict=True)


def check_checkpoint(
    path: Path,
    arch: str,
    checkpoint_format: str = "auto",
    options: Mapping[str, Any] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> LoadReport:
    """Load a checkpoint into `arch` strictly without running anything; for `rpsloc weights
    check` (METHOD.md 4). Raises `CheckpointError` when it does not fit."""
    state, report = load_checkpoint_state(Path(path), arch, checkpoint_format, options, max_bytes)
    model = _meta_model(arch, report.options)
    full = dict(state)
    for key in report.defaulted_keys:
        full[key] = torch.zeros((), dtype=torch.long)
    model.load_state_dict(full, strict=True, assign=True)
    return report
