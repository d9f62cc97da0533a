"""The test suite's backbone plugin: the colourfulness fixture, registered as the architecture
`fixture-colourfulness` through the entry point in rpsloc_test_fixtures-0.dist-info (the
mechanism of docs/architecture.md, "Your own backbone"). tests/conftest.py puts this folder on
sys.path and PYTHONPATH, so tests and their Snakemake subprocesses find it; it is never part of
the rpsloc package.

Like rpsloc's own registry, the record names its model by import path: looking the
architecture up (as the workflow does while it parses) imports no torch."""

from __future__ import annotations

from rpsloc.backbones import Architecture

#: The record the entry point `fixture-colourfulness` gives.
COLOURFULNESS = Architecture(
    "rpsloc_test_fixtures.colourfulness:ColourfulnessFixture", output_strides=(4, 8, 16, 32)
)
