"""Route a stage's output to its Snakemake log file, so every rule leaves a readable log."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def to_log(path: str | Path) -> Iterator[None]:
    """Send stdout, stderr and the `rpsloc` logger to `path` for the duration of the block.

    An exception is written to the log with its traceback and then re-raised, so Snakemake
    marks the job failed and the user finds the reason in the log.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("rpsloc")
    with path.open("w") as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        except BaseException:
            logger.exception("stage failed")
            raise
        finally:
            logger.removeHandler(handler)
            stream.flush()
    sys.stdout.flush()
