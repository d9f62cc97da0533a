"""Snakemake finds its logger plugins by their package name: `--logger rpsloc` selects this one,
the console of rpsloc.console."""

from rpsloc.console import LogHandler

__all__ = ["LogHandler"]
