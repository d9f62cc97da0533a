"""Every command in the README's `bash` blocks is one the tools accept: `make` targets exist,
`rpsloc` commands parse with the real parser and their subcommand is run by a test, `snakemake`
commands parse with Snakemake's own parser and name existing profiles and config files."""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import REPO
from snakemake.cli import get_argument_parser

from rpsloc.cli import _parser

SHELL_BUILTINS = {"source", "export", "cd"}


def readme_commands() -> list[str]:
    """The README's shell commands: continuation lines joined, comments and the optional
    `[...]` parts of usage lines dropped, `a && b` split."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\[[^\]]*\]", "", line.split(" # ")[0].split("#")[0]).strip()
            commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


def test_the_readme_has_the_two_commands_first():
    assert readme_commands()[:2] == ["make demo", "make test"]


@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_command_is_accepted(command):
    words = shlex.split(command)
    program, arguments = words[0], words[1:]
    if program == "make":
        targets = re.findall(r"^([a-z]+):", (REPO / "Makefile").read_text(), re.M)
        assert set(arguments) <= set(targets)
    elif program == "rpsloc":
        parsed = _parser().parse_args(arguments)
        tests = "".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
        assert f'"{arguments[0]}"' in tests, f"no test runs `rpsloc {arguments[0]}`"
        assert callable(parsed.run)
    elif program == "snakemake":
        parsed = get_argument_parser().parse_args(arguments)
        for path in [*(parsed.configfile or []), *filter(None, [parsed.workflow_profile])]:
            assert (REPO / path).exists(), f"{command}: {path} does not exist"
    else:
        assert program in SHELL_BUILTINS, f"README command {command!r} is not checked here"
