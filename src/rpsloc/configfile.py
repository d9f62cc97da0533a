"""Configuration files read strictly (README "Configuration").

PyYAML, and so Snakemake, keeps the last of two equal keys in a mapping without a word: a
`variants:` written twice in one dataset silently drops the first list. rpsloc reads every
configuration file the workflow uses with `read_config`, which refuses a key given twice
(naming the file and both lines) and names the file in every YAML syntax error.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from rpsloc.errors import InputError


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that states one key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden by explicit keys, as YAML says
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise InputError(
                    f"{self.name}, line {line}: key {key!r} is given twice in one mapping "
                    f"(first on line {first_lines[key]}); YAML would silently keep the last"
                )
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


def read_config(path: str | Path) -> dict[str, Any]:
    """The mapping of a YAML (or JSON) configuration file; `InputError` naming the file for a
    syntax error, a key stated twice (with both lines) or a top level that is not a mapping."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the configuration file ({error})") from error
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        config = loader.get_single_data()
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML: {error}") from error
    finally:
        loader.dispose()
    if not isinstance(config, dict):
        raise InputError(
            f"{path}: expected a mapping of configuration keys at the top level, found "
            f"{type(config).__name__}"
        )
    return config


def check_config_files(paths: Iterable[str | Path]) -> None:
    """Read each configuration file strictly (`read_config`), so a key stated twice stops the
    workflow before Snakemake's own reading, which keeps the last, is used."""
    for path in paths:
        read_config(path)
