"""Logging for the server: uvicorn's, plus a filter that keeps keys out of every log line."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote_plus

_KEY = re.compile(r"cgk_[A-Za-z0-9_\-]{4,}")


def redact_keys(text: str) -> str:
    """``text`` with every key replaced, also one hidden by percent-encoding (``%63gk_…``):
    such a line is logged decoded, with the key redacted."""
    if "%" in text or "+" in text:
        decoded = unquote_plus(text)
        if _KEY.search(decoded):
            return _KEY.sub("cgk_<redacted>", decoded)
    return _KEY.sub("cgk_<redacted>", text)


class RedactKeys(logging.Filter):
    """A key sent where it should not be (a query string) must not reach the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(redact_keys(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_keys(record.msg)
        return True


def uvicorn_log_config(level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {**LOGGING_CONFIG}
    config["filters"] = {"redact_keys": {"()": "rest.logs.RedactKeys"}}
    config["handlers"] = {
        name: {**handler, "filters": ["redact_keys"]}
        for name, handler in LOGGING_CONFIG["handlers"].items()
    }
    config["loggers"] = {
        **LOGGING_CONFIG["loggers"],
        "cogent": {"handlers": ["default"], "level": level.upper(), "propagate": False},
    }
    return config
