"""What ``RestPusher.py status`` reports, per remote."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, func, select

from base.config import Config, RemoteConfig
from base.errors import CogentError
from base.migrate import current_revision, schema_advice
from push.client import RemoteClient
from push.store import LocalStore, utcnow
from push.streams import STREAMS
from push.verify import HouseComparison, Verifier


@dataclass
class RemoteStatus:
    name: str
    url: str
    enabled: bool
    reachable: bool = False
    reach_error: str | None = None
    remote_schema: str | None = None
    local_schema: str | None = None
    schema_problem: str | None = None
    backlog: dict[str, int] = field(default_factory=dict)
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    set_aside: int = 0
    set_aside_examples: list[str] = field(default_factory=list)
    houses: list[HouseComparison] = field(default_factory=list)
    houses_error: str | None = None

    @property
    def healthy(self) -> bool:
        """Reachable, same schema, nothing waiting, and every house the same on both sides."""
        return (
            self.reachable
            and not self.schema_problem
            and not any(self.backlog.values())
            and not self.houses_error
            and all(h.same for h in self.houses)
        )


def backlog(engine: Engine, store: LocalStore, remote: str) -> dict[str, int]:
    """Rows not yet acknowledged by ``remote``, per stream (unstamped rows included)."""
    out = {}
    with engine.connect() as conn:
        for stream in STREAMS:
            t = stream.table
            cursor = store.cursor(remote, stream.name)
            ahead = conn.execute(
                select(func.count()).select_from(t).where(t.c.syncSeq > cursor)
            ).scalar_one()
            unstamped = conn.execute(
                select(func.count()).select_from(t).where(t.c.syncSeq.is_(None))
            ).scalar_one()
            out[stream.name] = int(ahead) + int(unstamped)
    return out


def remote_status(
    config: Config, remote: RemoteConfig, engine: Engine, probe: bool = True
) -> RemoteStatus:
    store = LocalStore(engine)
    st = RemoteStatus(remote.name, remote.resturl, remote.enabled)
    st.local_schema = current_revision(engine)
    if probe:
        client = RemoteClient(remote)
        try:
            version = client.version()
            st.reachable = True
            st.remote_schema = version.get("schema") if isinstance(version, dict) else None
            st.schema_problem = schema_advice(
                st.local_schema, st.remote_schema, remote_name=f"remote {remote.name!r}"
            )
            if not st.schema_problem:
                st.houses = Verifier(engine, client).compare()
        except CogentError as exc:
            if st.reachable:
                st.houses_error = str(exc)
            else:
                st.reach_error = str(exc)
        finally:
            client.close()
    st.backlog = backlog(engine, store, remote.name)
    state = store.remote_state(remote.name)
    if state:
        st.last_success, st.last_error, st.last_error_at = (
            state.lastSuccess,
            state.lastError,
            state.lastErrorAt,
        )
    st.set_aside = store.rejected_count(remote.name)
    st.set_aside_examples = [
        f"{r.tableName} id {r.localId}: {r.reason}" for r in store.rejected(remote.name, limit=5)
    ]
    return st


def _ago(when: datetime | None) -> str:
    if when is None:
        return "never"
    secs = int((utcnow() - when).total_seconds())
    if secs < 120:
        span = f"{secs} s"
    elif secs < 7200:
        span = f"{secs // 60} min"
    elif secs < 172800:
        span = f"{secs // 3600} h"
    else:
        span = f"{secs // 86400} days"
    return f"{when:%Y-%m-%d %H:%M:%S} UTC ({span} ago)"


def format_status(st: RemoteStatus) -> str:
    lines = [f"remote {st.name} ({st.url}){'' if st.enabled else ' [disabled]'}"]
    if st.reachable:
        lines.append("  reachable: yes")
    elif st.reach_error:
        lines.append(f"  reachable: NO — {st.reach_error}")
    if st.schema_problem:
        lines.append(f"  schema: MISMATCH — {st.schema_problem}")
    elif st.reachable:
        lines.append(f"  schema: {st.remote_schema} (matches)")
    total = sum(st.backlog.values())
    detail = ", ".join(f"{k} {v}" for k, v in st.backlog.items())
    lines.append(f"  backlog: {'none' if total == 0 else f'{total} rows ({detail})'}")
    lines.append(f"  last success: {_ago(st.last_success)}")
    if st.last_error and (
        st.last_success is None or (st.last_error_at and st.last_error_at >= st.last_success)
    ):
        lines.append(f"  last error: {_ago(st.last_error_at)}: {st.last_error}")
    lines.append(f"  rows set aside: {st.set_aside}")
    lines.extend(f"    {e}" for e in st.set_aside_examples)
    if st.houses_error:
        lines.append(f"  houses: cannot compare: {st.houses_error}")
    for house in st.houses:
        lines.append(f"  {house.summary_line()}")
    return "\n".join(lines)
