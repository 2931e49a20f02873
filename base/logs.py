"""Logging to the console and a rotating file.

A log directory that cannot be written must not stop a daemon that runs
unattended: the failure is reported on the console and logging carries on
there.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import sys
from collections.abc import Iterator
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5


def logfile_problem(logfile: str | None) -> str | None:
    """Say why ``logfile`` cannot be written, or None; for checks made before detaching."""
    if not logfile:
        return None
    try:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        with open(logfile, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        return f"cannot write log file {logfile!r} ({exc.strerror or exc})"
    return None


def configure_logging(
    level: str = "INFO", logfile: str | None = None, console: bool = True
) -> list[str]:
    """Set up the root logger; return problems met (e.g. an unwritable log file)."""
    problems: list[str] = []
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level.upper())
    formatter = logging.Formatter(LOG_FORMAT)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    if logfile:
        try:
            Path(logfile).parent.mkdir(parents=True, exist_ok=True)
            rotating = logging.handlers.RotatingFileHandler(
                logfile, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
            )
        except OSError as exc:
            problems.append(
                f"cannot write log file {logfile!r} ({exc.strerror or exc}); logging to the "
                f"console only. Fix the permissions or set [general] logfile."
            )
        else:
            rotating.setFormatter(formatter)
            root.addHandler(rotating)
    if not console and not root.handlers:
        root.addHandler(logging.NullHandler())
    for problem in problems:
        logging.getLogger("cogent").warning(problem)
    return problems


@contextlib.contextmanager
def quiet_console(*names: str) -> Iterator[None]:
    """Leave the INFO lines of loggers ``names`` out of the console (not the log file)
    while a progress display says the same thing in one line."""

    def keep(record: logging.LogRecord) -> bool:
        quiet = any(record.name == n or record.name.startswith(n + ".") for n in names)
        return not (quiet and record.levelno <= logging.INFO)

    consoles = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    for handler in consoles:
        handler.addFilter(keep)
    try:
        yield
    finally:
        for handler in consoles:
            handler.removeFilter(keep)
