"""Bring your own (docs/datasets.md, "Bring your own"): one CSV file lists every image of every
split with its label and boxes."""

from __future__ import annotations

import csv
from pathlib import Path

from rpsloc.datasets.policy import (
    BadImageError,
    Candidate,
    ReadOptions,
    escape_error,
    escapes,
    finish,
)
from rpsloc.datasets.records import ImageRecord
from rpsloc.errors import InputError

CSV_COLUMNS = ("split", "image_path", "label", "x0", "y0", "x1", "y1")


def csv_records(
    table: Path, root: Path | None, split: str, options: ReadOptions
) -> list[ImageRecord]:
    """A dataset described by one CSV file (docs/datasets.md, "Bring your own"): the columns
    `split,image_path,label,x0,y0,x1,y1`, one line per box (an image with several boxes has
    several lines with the same split, path and label; an image without boxes one line with the
    four box fields empty). Paths are relative to `root` (default: the CSV's folder); labels
    are 0-based integers, or empty when unknown (-1); boxes are 0-based inclusive pixel
    coordinates, as in the WSOL metadata. Sizes come from the image headers."""
    table = Path(table)
    root = (table.parent if root is None else Path(root)).absolute()
    try:
        stream = table.open(newline="", encoding="utf-8-sig")  # a spreadsheet's BOM is fine
    except OSError as error:
        raise InputError(f"{table}: cannot open ({error})") from error
    bad = options.bad
    candidates: dict[str, Candidate] = {}
    splits: dict[str, tuple[str, int]] = {}
    boxless: set[str] = set()
    with stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
            raise InputError(
                f"{table}, line 1: expected the header {','.join(CSV_COLUMNS)}, found "
                f"{'nothing' if header is None else ','.join(header)}"
            )
        for row in reader:
            line = reader.line_num
            if not row:
                continue  # a blank line
            if len(row) != len(CSV_COLUMNS):
                raise InputError(
                    f"{table}, line {line}: expected {len(CSV_COLUMNS)} fields, found {len(row)}"
                )
            row_split, image_id, label_text, *box_text = (value.strip() for value in row)
            if len([v for v in box_text if v]) not in (0, 4):
                raise InputError(f"{table}, line {line}: expected all four box fields or none")
            if not image_id:
                raise InputError(f"{table}, line {line}: empty image_path")
            first_split, first_line = splits.setdefault(image_id, (row_split, line))
            if row_split != split and first_split != split:
                continue
            try:
                label = _csv_int(image_id, label_text, "label", table, line) if label_text else None
                box = tuple(
                    _csv_int(image_id, v, "box coordinate", table, line) for v in box_text if v
                )
                if first_split != row_split:
                    raise BadImageError(
                        image_id,
                        f"image {image_id} is in split {first_split!r} on line "
                        f"{first_line} and in split {row_split!r}",
                        table,
                        line,
                    )
                if escapes(image_id):
                    raise escape_error(image_id, image_id, table, line)
                candidate = candidates.setdefault(
                    image_id,
                    Candidate(image_id, root / image_id, (table, line), label, (table, line)),
                )
                if candidate.label != label:
                    raise BadImageError(
                        image_id,
                        f"label {label_text or 'empty'} of {image_id} differs from "
                        f"line {candidate.source[1]}",
                        table,
                        line,
                    )
                if image_id in boxless or (not box and candidate.boxes):
                    raise BadImageError(
                        image_id,
                        f"image {image_id} has a line without a box and other lines (first on "
                        f"line {candidate.source[1]})",
                        table,
                        line,
                    )
                if box:
                    candidate.boxes.append((box, table, line))  # type: ignore[arg-type]
                else:
                    boxless.add(image_id)
            except BadImageError as error:
                bad.report(error)
    found = [c for c in candidates.values() if splits[c.image_id][0] == split]
    return finish(found, options)


def _csv_int(image_id: str, text: str, name: str, table: Path, line: int) -> int:
    """An integer field of one image's line; any other text is a bad value of that image."""
    try:
        return int(text)
    except ValueError:
        raise BadImageError(
            image_id, f"expected an integer {name} for {image_id}, found {text!r}", table, line
        ) from None
