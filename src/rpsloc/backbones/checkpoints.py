"""Checkpoints as projects publish them, read safely and loaded strictly (METHOD.md section 4;
docs/backbones.md).

A safetensors file (recognised by its header, whatever its name) is read by `safetensors`, which
never unpickles; any other file is unpickled with `weights_only=True`: a file that needs
arbitrary code to load is refused, never run. A format says where a project keeps the backbone
in its file (container key, key prefix), which archs it is published for, and which of the
project's own extra entries (decoders, prototypes) to ignore; the tensors left must fit the
architecture exactly, only heads and those extras may be missing or extra, and every ignored
entry is listed; every loaded tensor must be finite. Nothing is ever downloaded: a missing file
is an error naming who publishes its format.

Before anything is unpickled, `read_checkpoint` tells a damaged file from a foreign one and from
an unsafe one, since each asks the user for something else: copy a truncated file again, bring
the right file, or re-save a trusted one. A file whose tensors would take more than the size
limit in memory is refused from its zip directory (or its size) alone.
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from torch.overrides import TorchFunctionMode

from rpsloc.backbones import arch_options, architecture
from rpsloc.backbones.formats import (
    CHECKPOINT_FORMATS,
    DEFAULT_MAX_BYTES,
    FORMAT_ALIASES,
    CheckpointFormat,
    Shapes,
    require_checkpoint_file,
)
from rpsloc.errors import CheckpointError, InputError
from rpsloc.hashing import file_sha256

__all__ = [
    "LoadReport",
    "apply_checkpoint_state",
    "check_checkpoint",
    "fit_checkpoint",
    "is_safetensors",
    "load_checkpoint_state",
    "materialize_on_cpu",
    "on_meta_device",
    "read_checkpoint",
]

#: First key component of classification / projection heads: may be missing or extra.
HEAD_MODULES = frozenset({"fc", "head", "heads", "projector", "predictor", "classifier"})

#: Objects besides tensors and containers that a checkpoint may hold (all inert).
SAFE_GLOBALS: list[Any] = [argparse.Namespace]


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
    filled_keys: list[str] = field(default_factory=list)  # set by the format (timm's mask_token)
    reader: str = "torch.load"  # or "safetensors"
    prefix: str = ""  # the format's key prefix, to group the ignored entries
    ignored_entries: list[str] = field(default_factory=list)  # one line per ignored key
    outside_container: list[str] = field(default_factory=list)  # top-level entries not read

    def summary(self) -> str:
        """Lines for humans: file, hash, reader, format, counts, every group of ignored entries
        and every ignored entry with its shape and size (nothing is dropped unseen)."""
        read = (
            "safetensors (nothing unpickled)"
            if self.reader == "safetensors"
            else "torch.load (weights_only=True)"
        )
        lines = [
            f"checkpoint {self.path}",
            f"  sha256 {self.checkpoint_sha256}",
            f"  read by {read}",
            f"  format {self.format}, arch {self.arch}{_described(self.options)}: "
            f"{self.n_loaded} {self.kind} tensors loaded",
        ]
        if self.defaulted_keys:
            lines.append(
                f"  {len(self.defaulted_keys)} BatchNorm num_batches_tracked counters absent "
                "(unused in eval mode, set to 0)"
            )
        if self.filled_keys:
            lines.append(
                f"  {', '.join(self.filled_keys)} absent: format {self.format} does not keep it "
                "(used only in training), set to 0"
            )
        lines.append(
            f"  {len(self.ignored_keys)} checkpoint entries ignored (heads, the project's own "
            f"extras, or outside the {self.kind} prefix){_grouped(self.ignored_keys, self.prefix)}"
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


def _grouped(keys: list[str], prefix: str) -> str:
    """Every ignored module with its count: a key is grouped under its leading name parts up to
    the first one that leaves `prefix` (`module.momentum_encoder.*` beside the prefix
    `module.base_encoder.`, `module.base_encoder.head.*` inside it)."""
    if not keys:
        return ""
    inside = prefix.split(".")[:-1]
    groups: Counter[str] = Counter()
    for key in keys:
        parts = key.split(".")
        shared = 0
        while shared < min(len(inside), len(parts) - 1) and parts[shared] == inside[shared]:
            shared += 1
        head = parts[: shared + 1]
        groups[".".join(head) + (".*" if len(parts) > len(head) else "")] += 1
    return ": " + ", ".join(f"{group} ({count})" for group, count in groups.items())


def is_safetensors(path: str | Path) -> bool:
    """Whether `path` is a safetensors file, by its header (an 8-byte little-endian length,
    then a JSON object), whatever its name: torch's zip and pickle files never start so."""
    with open(path, "rb") as stream:
        head = stream.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def read_checkpoint(
    path: str | Path,
    arch: str,
    checkpoint_format: str = "auto",
    formats: Mapping[str, CheckpointFormat] = CHECKPOINT_FORMATS,
    key: str = "backbone `weights`",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Any:
    """The checkpoint's contents, read safely: a safetensors file by `safetensors` (a flat dict
    of tensors; nothing is unpickled), any other by torch.load with weights_only=True, which
    refuses anything beyond tensors and SAFE_GLOBALS. A missing file is reported by
    `require_checkpoint_file`; an empty, truncated, foreign or too large file by
    `_check_container` before it is read; and a pickle that cannot be read says whether it asked
    for code (naming the globals) or is damaged."""
    path = require_checkpoint_file(path, arch, checkpoint_format, formats, key)
    if is_safetensors(path):
        _refuse_oversized(path, path.stat().st_size, max_bytes)
        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            message = f"checkpoint {path} could not be read by safetensors: {exc}"
            raise CheckpointError(message) from exc
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
        _refuse_oversized(path, sum(entry.file_size for entry in entries), max_bytes)
    elif head[0] == 0x80:  # a pickle of protocol 2 or later: torch.save before PyTorch 1.6
        _refuse_oversized(path, size, max_bytes)
    else:
        raise CheckpointError(
            f"checkpoint {path} is not a PyTorch checkpoint: it is {_file_kind(head)} (first "
            f"bytes {head[:8]!r}), where torch.save writes a zip archive, or a pickle before "
            "PyTorch 1.6, and safetensors a JSON header"
        )


def _refuse_oversized(path: Path, inflated: int, max_bytes: int) -> None:
    """A file that would take more than `max_bytes` in memory is refused before it is read."""
    if inflated > max_bytes:
        raise CheckpointError(
            f"checkpoint {path} holds {_bytes(inflated)} uncompressed "
            f"({_bytes(path.stat().st_size)} on disk), more than the limit of "
            f"{_bytes(max_bytes)}, and was not loaded. If the file is what you meant, raise "
            "checkpoints.max_size_gb in the config (or --max-size-gb of rpsloc weights check)"
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


class _MetaNormalSkipped(TorchFunctionMode):
    """`Tensor.normal_` left undone on meta tensors, whose values a checkpoint replaces anyway:
    on the meta device torch runs it through a Python reference whose first call imports
    torch._dynamo, about 1.5 s paid by every job that loads a ResNet or VGG checkpoint
    (bench/job_overhead.py)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.normal_ and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


@contextmanager
def on_meta_device() -> Iterator[None]:
    """Modules built inside hold meta tensors (names and shapes, no memory, no init), for a
    checkpoint to fill."""
    with torch.device("meta"), _MetaNormalSkipped():
        yield


def materialize_on_cpu(model: nn.Module) -> None:
    """`model.to_empty(device="cpu")` for a model built `on_meta_device`, without torch's
    Python reference of `empty_like` for meta tensors, whose first call imports sympy (about
    1 s per job that loads a checkpoint)."""
    model._apply(lambda tensor: torch.empty(tensor.shape, dtype=tensor.dtype))


def _meta_model(arch: str, options: Mapping[str, Any]) -> nn.Module:
    """`arch` built on the meta device (names and shapes; no memory, no init) at its first
    output stride: no parameter's shape depends on the stride."""
    record = architecture(arch)
    with on_meta_device():
        return record.build(record.output_strides[0], **options)


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
    extras: list[str] = field(default_factory=list)  # ignored as the format's own extras
    filled: list[str] = field(default_factory=list)  # set by the format's conversion
    ignored_entries: list[str] = field(default_factory=list)  # each ignored key, why, its size
    outside_container: list[str] = field(default_factory=list)  # top-level entries not read

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped)

    @property
    def specificity(self) -> tuple[int, bool]:
        """How closely the format describes the file, for "auto" to choose among formats that
        fit: first its own extras (found: 1; none expected: 0; expected but absent: -1, so a
        bare DataParallel ResNet-50 is `dataparallel`, not `swav`), then whether it is made for
        particular archs, the file's among them (a DINOv2 file is `dinov2`, not the generic
        `torchvision`)."""
        own = (1 if self.extras else -1) if self.fmt.ignored else 0
        return own, self.fmt.archs is not None

    def describe(self, path: Path, n_expected: int) -> str:
        container = "the file itself" if self.fmt.container is None else repr(self.fmt.container)
        renamed = ", names converted" if self.fmt.convert else ""
        return (
            f"checkpoint {path} as format {self.fmt.name} (container {container}, prefix "
            f"{self.fmt.prefix!r}{renamed}): {len(self.state)} of {n_expected} {self.kind} "
            f"tensors match; {len(self.missing)} missing{_first(self.missing)}; "
            f"{len(self.unexpected)} unexpected{_first(self.unexpected)}; "
            f"{len(self.misshaped)} with the wrong shape{_first(self.misshaped)}"
        )


def _contents(raw: Any, fmt: CheckpointFormat) -> Mapping[Any, Any] | None:
    """The entries of `fmt`'s container in `raw`; None when `raw` is not in `fmt`'s layout (no
    such container, or no key with its prefix)."""
    if not isinstance(raw, Mapping):
        return None
    source = raw if fmt.container is None else raw.get(fmt.container)
    if not isinstance(source, Mapping):
        return None
    if fmt.prefix and not any(str(k).startswith(fmt.prefix) for k in source):
        return None
    return source


def _fit(raw: Any, fmt: CheckpointFormat, expected: Shapes, kind: str) -> _Fit | None:
    """Strip container and prefix, convert, and compare with the architecture; None if not
    applicable."""
    source = _contents(raw, fmt)
    if source is None:
        return None
    entries = {str(k): v for k, v in source.items()}
    ignored = [k for k in entries if not k.startswith(fmt.prefix)]
    inside = {k[len(fmt.prefix) :]: v for k, v in entries.items() if k.startswith(fmt.prefix)}
    filled: list[str] = []
    if fmt.convert is not None:
        converted = fmt.convert(inside, expected)
        if converted is None:
            return None
        inside, filled = converted
    state: dict[str, torch.Tensor] = {}
    listed = [f"{k}: {_entry(entries[k])} (outside the prefix {fmt.prefix!r})" for k in ignored]
    extras: list[str] = []
    unexpected: list[str] = []
    misshaped: list[str] = []
    wrong: set[str] = set()
    for name, value in inside.items():
        key = fmt.prefix + name
        first = name.split(".", 1)[0]
        if name not in expected:
            own = first in fmt.ignored
            if own:
                extras.append(key)
            if own or first in HEAD_MODULES:
                ignored.append(key)
                why = f"an extra of format {fmt.name}" if own else "a head"
                listed.append(f"{key}: {_entry(value)} ({why})")
            else:
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
        fmt,
        state,
        ignored,
        defaulted,
        missing,
        unexpected,
        misshaped,
        kind,
        extras,
        filled,
        listed,
        outside,
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
    sha256: str | None = None,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The backbone state dict of a checkpoint, checked strictly against `arch` (METHOD.md 4).

    The container key and key prefix of `checkpoint_format` are stripped; every backbone
    parameter and buffer must then be present with the right shape (BatchNorm's
    `num_batches_tracked` may be absent); only heads (`fc`, `head`, projector, predictor,
    classifier) and the format's own extras may be missing or extra, and keys outside the
    prefix are ignored, all of them listed in the report. With "auto" every format published
    for `arch` is tried and one must fit (`fit_checkpoint`). `options` size a configurable
    architecture (its record's `options`); None takes those the checkpoint records, else the
    defaults. A file holding more than `max_bytes` uncompressed is refused before it is read.
    `sha256`: the file's SHA-256 when the caller already knows it (else it is computed).
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
    return fit_checkpoint(
        raw, path, arch, expected, checkpoint_format, options=options, sha256=sha256
    )


def fit_checkpoint(
    raw: Any,
    path: Path,
    arch: str,
    expected: Shapes,
    checkpoint_format: str = "auto",
    formats: Mapping[str, CheckpointFormat] = CHECKPOINT_FORMATS,
    kind: str = "backbone",
    options: Mapping[str, Any] | None = None,
    sha256: str | None = None,
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The state dict of a checkpoint `raw` (read from `path`, whose SHA-256 is `sha256` or
    computed) that fits the parameter and buffer shapes `expected` of `arch`, in
    `checkpoint_format` or, with "auto", in one of the
    `formats` published for `arch`: the one that fits, or of several the most specific
    (`_Fit.specificity`; a tie is an error). The rules of `load_checkpoint_state`. `kind`
    names the tensors in messages. Raises `CheckpointError`."""
    path = Path(path)
    fmt = _resolve_format(checkpoint_format, formats)
    if fmt is not None:
        if not fmt.holds(arch):
            raise CheckpointError(
                f"checkpoint format {fmt.name} is published for the archs {list(fmt.archs or ())}"
                f", not {arch!r}: set the {kind}'s arch to the one its project trained"
            )
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
        candidates = [f for f in formats.values() if f.holds(arch)]
        fits = [f for f in (_fit(raw, x, expected, kind) for x in candidates) if f]
        good = [f for f in fits if f.ok]
        best = max((f.specificity for f in good), default=None)
        good = [f for f in good if f.specificity == best]
        if len(good) > 1:
            raise CheckpointError(
                f"checkpoint {path} fits several formats for arch {arch!r}: "
                f"{[f.fmt.name for f in good]}; set the {kind}'s checkpoint_format to the "
                "project that published it"
            )
        if not good:
            top = list(raw)[:10] if isinstance(raw, Mapping) else type(raw).__name__
            elsewhere = _formats_of_other_archs(raw, arch, formats)
            if not fits:
                raise CheckpointError(
                    f"checkpoint {path} matches no known format's container and prefix for arch "
                    f"{arch!r} (top-level entries: {top}); known formats: {sorted(formats)}"
                    f"{elsewhere}"
                )
            closest = max(fits, key=lambda f: len(f.state))
            raise CheckpointError(
                f"checkpoint {path} does not fit arch {arch!r} in any format "
                f"(tried {[f.fmt.name for f in fits]}). "
                f"Closest: {closest.describe(path, len(expected))}{elsewhere}"
            )
        fit = good[0]
    _require_finite(fit, path)
    report = LoadReport(
        format=fit.fmt.name,
        n_loaded=len(fit.state) - len(fit.filled),
        ignored_keys=fit.ignored,
        checkpoint_sha256=sha256 or file_sha256(path),
        path=str(path),
        arch=arch,
        defaulted_keys=fit.defaulted,
        options=dict(options or {}),
        kind=kind,
        filled_keys=fit.filled,
        reader="safetensors" if is_safetensors(path) else "torch.load",
        prefix=fit.fmt.prefix,
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


def _formats_of_other_archs(raw: Any, arch: str, formats: Mapping[str, CheckpointFormat]) -> str:
    """A hint when the file has the distinctive layout (a container or a prefix; the longest
    prefix that matches) of formats published for other archs only."""
    others = [
        f
        for f in formats.values()
        if not f.holds(arch) and (f.container or f.prefix) and _contents(raw, f) is not None
    ]
    longest = max((len(f.prefix) for f in others), default=0)
    others = [f for f in others if len(f.prefix) == longest]
    if not others:
        return ""
    listed = "; ".join(f"{f.name} (archs {list(f.archs or ())})" for f in others)
    return f". It has the layout of formats published for other archs: {listed}"


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
