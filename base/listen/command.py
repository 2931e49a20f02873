"""``cogent-base listen``: the command line's side of the listener (base/listen/server.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import replace

from base.config import find_config_path
from base.db import make_engine, redact
from base.errors import ConfigError
from base.listen import ListenConfig, Listener, load_listen_config, parse_mapping_value
from base.listen.settings import KEYS as LISTEN_KEYS
from base.migrate import current_revision

log = logging.getLogger("cogent.base")


def listen_config(args: argparse.Namespace) -> ListenConfig:
    """The [listen] section, then the command line's options, through the same converters."""
    path = find_config_path(args.config)
    overrides = {
        key: str(getattr(args, key))
        for key in LISTEN_KEYS
        if getattr(args, key, None) is not None
    }
    cfg = load_listen_config(path if (args.config or path.is_file()) else None, overrides)
    mapping = dict(cfg.mapping)
    for entry in args.map:
        node, sep, spec = entry.partition("=")
        if not sep or not node.strip().isdigit():
            raise ConfigError(f"--map {entry!r}: write NODE=TYPES, e.g. 10=T,RH,BAT")
        mapping[int(node)] = parse_mapping_value(f"node.{node.strip()}", spec)
    return replace(cfg, mapping=mapping)


def run_listen(args: argparse.Namespace, url: str) -> int:
    """``cogent-base listen``: record lines into the database at ``url`` until stopped."""
    cfg = listen_config(args)
    if args.ack and not args.stdin:
        raise ConfigError("--ack goes with --stdin (on TCP the answers go to the client)")
    log.info("database %s: recording lines", redact(url))
    engine = make_engine(url)
    try:
        if current_revision(engine) is None:
            raise ConfigError(
                f"the database {redact(url)} has no cogent-sync schema yet; create it with "
                f"'alembic -x url=URL upgrade head' (or run 'cogent-base simulate' once)"
            )
        listener = Listener(engine, cfg)
        if args.stdin:
            out = sys.stdout.buffer if args.ack else None
            stats = asyncio.run(listener.serve_stream(sys.stdin.buffer, out))
        else:
            stats = asyncio.run(listener.serve_tcp())
    finally:
        engine.dispose()
    log.info(
        "stored %d readings from %d lines (%d skipped) into %s",
        stats.readings,
        stats.lines,
        stats.bad,
        redact(url),
    )
    return 1 if listener.failed else 0
