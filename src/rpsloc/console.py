"""The terminal of a workflow run: Snakemake's logger plugin `rpsloc`, which the workflow's
profiles select (README "Running"; docs/reliability.md "The console").

Snakemake prints every job's inputs, outputs and reasons, the full traceback of a failed job two
or three times and a header for every run; a demo fills 1,200 lines. This console prints:

- progress, at most one line per 5% of the jobs, naming the last job done;
- one line per failed job: the rule and wildcards, the error (the line rpsloc.logging.to_log
  wrote into the job's log) and the log path; the traceback stays in the log;
- every warning and error of Snakemake and of rpsloc (the tracking notices among them), and
  its other messages but for the routine ones listed in ROUTINE.

A dry run and `--verbose` print Snakemake's own console, unchanged.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

from rpsloc.logging import read_failure

#: Snakemake's informational messages that say nothing a user acts on.
ROUTINE = (
    "Building DAG of jobs",
    "Using shell:",
    "Provided cores:",
    "Provided resources:",
    "Rules claiming more threads",
    "Conda environments:",
    "Select jobs to execute",
    "Execute ",
    "DAG of jobs will be updated",
    "Assuming unrestricted shared filesystem",
    "Updating job ",
    "Updating checkpoint dependencies",
    "Removing temporary output",
    "Elapsed time",
)
#: Events shown only through the lines above: job details, the run header, the job table.
SILENT = {
    LogEvent.WORKFLOW_STARTED,
    LogEvent.RUN_INFO,
    LogEvent.SHELLCMD,
    LogEvent.JOB_STARTED,
    LogEvent.GROUP_INFO,
    LogEvent.RESOURCES_INFO,
    LogEvent.RULEGRAPH,
    LogEvent.DEBUG_DAG,
}
#: Progress is printed when the share of finished jobs crosses a multiple of 1 / STEPS.
STEPS = 20


def describe_job(rule: str, wildcards: dict[str, Any] | None) -> str:
    """`rule (name=value, ...)`: a job as the terminal names it."""
    values = ", ".join(f"{name}={value}" for name, value in (wildcards or {}).items())
    return f"{rule} ({values})" if values else rule


def failure_line(job: str, logs: list[str]) -> str:
    """The one line a failed job gets: its name, its error as its log records it, the log."""
    where = ", ".join(logs) if logs else "no log"
    error = next(filter(None, (read_failure(log) for log in logs)), None)
    if error is None:
        return f"error: {job} failed (no error recorded; the log may say more: {where})"
    return f"error: {job} failed: {error} [log: {where}]"


def is_script_exit(record: logging.LogRecord) -> bool:
    """Snakemake's report that a job's script exited with an error: the job's line says it."""
    return (
        getattr(record, "exception", None) == "RuleException"
        and "CalledProcessError" in record.getMessage()
    )


class LogHandler(LogHandlerBase):
    """The `rpsloc` console (module docstring). Snakemake's default filter still applies, so
    `--quiet` keeps its meaning."""

    def __post_init__(self) -> None:
        from snakemake.logging import DefaultFormatter

        self.snakemake_console = DefaultFormatter(
            self.common_settings.quiet, self.common_settings.show_failed_logs
        )
        self.stream = sys.stdout if self.common_settings.stdout else sys.stderr
        self.jobs: dict[int, str] = {}
        self.last_done = ""
        self.steps_shown = 0

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return False

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def emit(self, record: logging.LogRecord) -> None:
        """Called under the handler's lock (logging.Handler.handle), one record at a time."""
        try:
            if self.common_settings.verbose or self.common_settings.dryrun:
                text = self.snakemake_console.format(record)
            else:
                text = self.line(record)
            if text and text != "None":
                self.stream.write(text + "\n")
                self.stream.flush()
        except Exception:
            self.handleError(record)

    def line(self, record: logging.LogRecord) -> str | None:
        """What the terminal shows of one record, if anything."""
        event = getattr(record, "event", None)
        if event == LogEvent.JOB_INFO:
            self.jobs[record.jobid] = describe_job(record.rule_name, record.wildcards)
            return None
        if event == LogEvent.JOB_FINISHED:
            self.last_done = self.jobs.get(record.job_id, "")
            return None
        if event == LogEvent.PROGRESS:
            return self.progress(record.done, record.total)
        if event == LogEvent.JOB_ERROR:
            job = self.jobs.get(record.jobid, describe_job(record.rule_name, None))
            return failure_line(job, list(record.log))
        if event == LogEvent.GROUP_ERROR:
            return None  # each of its jobs reports its own JOB_ERROR
        if event in SILENT or is_script_exit(record):
            return None
        message = record.getMessage()
        if record.levelno <= logging.INFO and message.startswith(ROUTINE):
            return None
        return message

    def progress(self, done: int, total: int) -> str | None:
        """A progress line when `done` crosses the next step (and at the end)."""
        step = done * STEPS // max(total, 1)
        if step <= self.steps_shown and done < total:
            return None
        self.steps_shown = step
        last = f" (last: {self.last_done})" if self.last_done else ""
        return f"[{done}/{total}] {100 * done // max(total, 1)}% of the jobs done{last}"
