"""tf.logging: TF1's logging functions over the standard library's logging (the "graphexec.user" logger).

As in TF1 the default verbosity is WARN; tf.logging.set_verbosity(tf.logging.INFO) shows info messages.
Messages go to stderr as "INFO:graphexec:message".
"""
from __future__ import annotations

import logging
import sys

from graphexec import api_gaps

__all__ = ["DEBUG", "ERROR", "FATAL", "INFO", "WARN", "TaskLevelStatusMessage", "debug", "error", "fatal", "flush",
           "get_verbosity", "info", "log", "log_every_n", "log_first_n", "log_if", "set_verbosity", "vlog", "warn",
           "warning"]

DEBUG, INFO, WARN, ERROR, FATAL = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL

# A logger of its own (not "graphexec", whose children are the server's loggers), writing to stderr.
_logger = logging.getLogger("graphexec.user")
_counts: dict[tuple, int] = {}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (so redirections and captures see the messages)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _ready() -> logging.Logger:
    """The logger, with its stderr handler and TF1's default level (WARN) unless set already."""
    if not _logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:graphexec:%(message)s"))
        _logger.addHandler(handler)
        _logger.propagate = False
    if _logger.level == logging.NOTSET:
        _logger.setLevel(WARN)
    return _logger


def set_verbosity(v) -> None:
    _ready().setLevel(v)


def get_verbosity() -> int:
    return _ready().getEffectiveLevel()


def log(level, msg, *args, **kwargs) -> None:
    _ready().log(level, msg, *args, **kwargs)


def debug(msg, *args, **kwargs) -> None:
    log(DEBUG, msg, *args, **kwargs)


def info(msg, *args, **kwargs) -> None:
    log(INFO, msg, *args, **kwargs)


def warning(msg, *args, **kwargs) -> None:
    log(WARN, msg, *args, **kwargs)


warn = warning


def error(msg, *args, **kwargs) -> None:
    log(ERROR, msg, *args, **kwargs)


def fatal(msg, *args, **kwargs) -> None:
    log(FATAL, msg, *args, **kwargs)


def vlog(level, msg, *args, **kwargs) -> None:
    log(level, msg, *args, **kwargs)


def log_if(level, msg, condition, *args) -> None:
    if condition:
        log(level, msg, *args)


def _caller_key() -> tuple:
    frame = sys._getframe(2)
    return frame.f_code.co_filename, frame.f_lineno


def log_every_n(level, msg, n, *args) -> None:
    """Logs on the 1st, (n+1)th, (2n+1)th... call from the same line."""
    key = _caller_key()
    count = _counts.get(key, 0)
    _counts[key] = count + 1
    log_if(level, msg, count % max(int(n), 1) == 0, *args)


def log_first_n(level, msg, n, *args) -> None:
    key = _caller_key()
    count = _counts.get(key, 0)
    _counts[key] = count + 1
    log_if(level, msg, count < n, *args)


def flush() -> None:
    for handler in _ready().handlers:
        handler.flush()


def TaskLevelStatusMessage(msg) -> None:  # noqa: N802 - TF's name
    error(msg)


__getattr__ = api_gaps.missing_names("logging", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
