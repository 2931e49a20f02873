"""The pusher's figures for Prometheus' node exporter: with ``metrics_file`` set, after every
cycle the pusher rewrites that file in the text format the node exporter's textfile
collector reads (point its ``--collector.textfile.directory`` at the file's folder; the
name must end in ``.prom``). Written to a temporary file and renamed, so a scrape never
reads half a file."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from push.ledger import LocalStore


@dataclass
class RemoteFigures:
    ok: bool
    sent: int
    backlog: dict[str, int] = field(default_factory=dict)
    set_aside: int = 0
    last_success: datetime | None = None
    clock_offset: float | None = None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_HELP = {
    "cogent_push_last_cycle_ok": ("gauge", "1 when the last cycle to the remote delivered "
                                           "everything, else 0"),
    "cogent_push_last_cycle_rows_sent": ("gauge", "rows the last cycle sent"),
    "cogent_push_backlog_rows": ("gauge", "rows not yet acknowledged by the remote"),
    "cogent_push_set_aside_rows": ("gauge", "rows set aside for the remote (status shows why)"),
    "cogent_push_last_success_timestamp_seconds": ("gauge", "when a cycle last succeeded"),
    "cogent_push_clock_offset_seconds": ("gauge", "this station's clock minus the remote's"),
}


def render(figures: dict[str, RemoteFigures]) -> str:
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    for remote, f in sorted(figures.items()):
        r = f'remote="{_label(remote)}"'
        samples["cogent_push_last_cycle_ok"].append(f"{{{r}}} {int(f.ok)}")
        samples["cogent_push_last_cycle_rows_sent"].append(f"{{{r}}} {f.sent}")
        for stream, rows in sorted(f.backlog.items()):
            samples["cogent_push_backlog_rows"].append(
                f'{{{r},stream="{_label(stream)}"}} {rows}')
        samples["cogent_push_set_aside_rows"].append(f"{{{r}}} {f.set_aside}")
        if f.last_success is not None:
            stamp = (f.last_success - datetime(1970, 1, 1)).total_seconds()
            samples["cogent_push_last_success_timestamp_seconds"].append(f"{{{r}}} {stamp:.3f}")
        if f.clock_offset is not None:
            samples["cogent_push_clock_offset_seconds"].append(f"{{{r}}} {f.clock_offset:.3f}")
    lines: list[str] = []
    for name, (kind, text) in _HELP.items():
        if samples[name]:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines += [name + s for s in samples[name]]
    return "\n".join(lines) + "\n"


class MetricsFile:
    """The latest figures of every remote, rewritten to ``path`` after each cycle."""

    def __init__(self, path: str, engine: Engine) -> None:
        self.path = Path(path)
        self.store = LocalStore(engine)
        self.engine = engine
        self.figures: dict[str, RemoteFigures] = {}
        self._lock = threading.Lock()

    def record(self, remote: str, ok: bool, sent: int, clock_offset: float | None) -> None:
        from push.streams import backlog

        state = self.store.remote_state(remote)
        figures = RemoteFigures(
            ok=ok, sent=sent, backlog=backlog(self.engine, self.store, remote),
            set_aside=self.store.rejected_count(remote),
            last_success=state.lastSuccess if state else None, clock_offset=clock_offset)
        with self._lock:
            self.figures[remote] = figures
            text = render(self.figures)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)
