"""Route a stage's output to its Snakemake log file, so every rule leaves a readable log, and
keep the terminal to one line per failed job (rpsloc.console reads that line back)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

#: What precedes the one-line summary of a job's error in its log.
FAILED = "the job failed: "
#: The longest summary the terminal shows; the log holds the whole message.
SUMMARY_CHARS = 500


@contextlib.contextmanager
def to_log(path: str | Path) -> Iterator[None]:
    """Send stdout, stderr and the `rpsloc` logger to `path` for the duration of the block.

    An error is written to the log twice: its traceback, then one line (`FAILED`, the error's
    type and message). The process then exits with status 1 without writing anything to the
    terminal, so Snakemake marks the job failed, jobs running in parallel never interleave their
    tracebacks, and the console prints the line with the rule and the log path.
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
        except Exception as error:
            logger.exception("stage failed")
            logger.error("%s%s", FAILED, error_summary(error))
            raise SystemExit(1) from None
        except BaseException:
            logger.exception("stage interrupted")
            raise
        finally:
            logger.removeHandler(handler)
            stream.flush()
    sys.stdout.flush()


def error_summary(error: BaseException) -> str:
    """The error's type and message on one line, at most SUMMARY_CHARS long."""
    message = " ".join(str(error).split())
    summary = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 30] + " ... (the whole message: log)"
    return summary


def read_failure(path: str | Path) -> str | None:
    """The one-line summary `to_log` wrote of the error in the log at `path`, or None when the
    log holds none (the job was killed, or failed before its log was opened)."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    marker = f"rpsloc: {FAILED}"
    found = [line.split(marker, 1)[1] for line in lines if marker in line]
    return found[-1] if found else None
