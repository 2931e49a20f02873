"""Record readings that arrive as text lines, on a loopback TCP port or on stdin.

Line formats (docs/INGEST.md has the full description):

* native: ``NODE TYPE VALUE [TIME]`` — ``TYPE`` a sensor type id (``0``) or
  code (``T``); ``TIME`` ISO-8601 (``2026-01-01T12:00:00.25Z``; no offset
  means UTC) or Unix epoch seconds; default: when the line arrived.
* emonhub: ``NODE V1 V2 …`` for a node with a ``node.<id> = T,RH,BAT`` mapping
  in the ``[listen]`` section; stamped when the line arrived.
* blank lines and lines starting with ``#`` are ignored.

Acknowledgement: after each commit the listener answers ``OK <n>`` on the
connection (on stdout with ``--ack`` in stdin mode), meaning every line up to
line ``n`` of that connection is either stored or was answered with
``ERR <line> <reason>``. A client that loses the connection re-sends from
line ``n + 1``; readings already stored are skipped by natural key, so
re-sending is harmless. Lines are committed every ``batch_lines`` lines or
``batch_seconds`` seconds, whichever comes first, and on shutdown (EOF,
SIGTERM, SIGINT).
"""

from base.listen.lines import BadLine, LineParser, Record, parse_time
from base.listen.recorder import Recorder
from base.listen.server import MAX_LINE, Listener, ListenStats
from base.listen.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    FORMATS,
    SECTION,
    UNKNOWN_NODES,
    FieldSpec,
    ListenConfig,
    load_listen_config,
    parse_listen_section,
    parse_mapping_value,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "FORMATS",
    "MAX_LINE",
    "SECTION",
    "UNKNOWN_NODES",
    "BadLine",
    "FieldSpec",
    "LineParser",
    "ListenConfig",
    "ListenStats",
    "Listener",
    "Record",
    "Recorder",
    "load_listen_config",
    "parse_listen_section",
    "parse_mapping_value",
    "parse_time",
]
