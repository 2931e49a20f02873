"""What ``RestPusher.py status`` reports: the local database, then each remote.

Every line must be true: counts are the local database's own (rows set aside are counted,
and said to be set aside), a disabled remote is listed as disabled and never contacted,
a refused key is found by a request that needs the key, and counts that differ are shown
with both numbers. :func:`status_exit` turns it into the exit code of docs/OPERATIONS.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from base.config import Config, RemoteConfig
from base.db import redact
from base.errors import AuthError, CogentError
from base.migrate import current_revision, head_revision, schema_advice
from models import Node, NodeState, Reading
from push.client import RemoteClient
from push.clock import describe_offset, skewed
from push.ledger import LocalStore, utcnow
from push.outcome import Exit, for_failure, worst
from push.setaside import Reason, set_aside_reasons
from push.streams import backlog
from push.verify import HouseComparison, Verifier

REASONS_SHOWN = 10
SERIES_SHOWN = 5
SERIES_IN_JSON = 200


@dataclass
class LocalStatus:
    database: str  # password hidden
    schema: str | None
    head: str
    readings: int = 0
    node_states: int = 0
    readings_without_location: int = 0  # in no house: the node had no location
    states_without_location: int = 0

    def lines(self) -> list[str]:
        schema = self.schema or "none"
        if self.schema != self.head:
            schema += f", this cogent-sync expects {self.head}: run 'RestPusher.py migrate'"
        out = [
            f"local database {self.database} (schema {schema}): "
            f"{self.readings} readings, {self.node_states} node states"
        ]
        if self.readings_without_location or self.states_without_location:
            out.append(
                f"  of them in no house (their node has no location): "
                f"{self.readings_without_location} readings, "
                f"{self.states_without_location} node states"
            )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "schema": self.schema,
            "expected_schema": self.head,
            "readings": self.readings,
            "node_states": self.node_states,
            "without_location": {
                "readings": self.readings_without_location,
                "node_states": self.states_without_location,
            },
        }


def local_status(engine: Engine) -> LocalStatus:
    located = select(Node.id).where(Node.locationId.is_not(None))
    with engine.connect() as conn:

        def count(table: Any, *where: Any) -> int:
            stmt = select(func.count()).select_from(table).where(*where)
            return int(conn.execute(stmt).scalar_one())

        return LocalStatus(
            database=redact(engine.url),
            schema=current_revision(conn),
            head=head_revision(),
            readings=count(Reading),
            node_states=count(NodeState),
            readings_without_location=count(Reading, Reading.locationId.is_(None)),
            states_without_location=count(NodeState, NodeState.nodeId.not_in(located)),
        )


@dataclass
class RemoteStatus:
    name: str
    url: str
    enabled: bool
    contacted: bool = False
    reachable: bool = False
    key_accepted: bool | None = None  # None: not asked
    failure: type[BaseException] | None = None  # what stopped the probe
    reach_error: str | None = None
    remote_schema: str | None = None
    local_schema: str | None = None
    schema_problem: str | None = None
    backlog: dict[str, int] = field(default_factory=dict)
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    set_aside: int = 0
    reasons: list[Reason] = field(default_factory=list)
    houses: list[HouseComparison] = field(default_factory=list)
    houses_error: str | None = None
    houses_failure: type[BaseException] | None = None
    config_path: str | None = None
    clock_offset: float | None = None  # this station minus the remote, seconds
    clock_warning: float = 120.0

    @property
    def behind(self) -> bool:
        """Rows not yet on the remote that are not set aside: a backlog, or a house apart."""
        return any(self.backlog.values()) or not all(_in_step(h) for h in self.houses)

    @property
    def healthy(self) -> bool:
        """Reachable, key accepted, same schema, nothing waiting, every house the same."""
        return self.exit_code() in (Exit.OK, Exit.SET_ASIDE)

    def exit_code(self) -> Exit:
        if not self.enabled:
            return Exit.OK
        if self.failure is not None:
            return for_failure(self.failure)
        if self.schema_problem:
            return Exit.SCHEMA
        if self.houses_error:
            return for_failure(self.houses_failure)
        if self.behind:
            return Exit.FAILED
        if self.set_aside:
            return Exit.SET_ASIDE
        return Exit.OK

    def as_json(self) -> dict[str, Any]:
        code = self.exit_code()
        return {
            "name": self.name,
            "url": self.url,
            "enabled": self.enabled,
            "contacted": self.contacted,
            "reachable": self.reachable if self.contacted else None,
            "key_accepted": self.key_accepted,
            "error": self.reach_error,
            "schema": {
                "local": self.local_schema,
                "remote": self.remote_schema,
                "problem": self.schema_problem,
            },
            "backlog": dict(self.backlog),
            "clock_offset": self.clock_offset,
            "clock_skewed": skewed(self.clock_offset, self.clock_warning),
            "last_success": _iso(self.last_success),
            "last_error": self.last_error,
            "last_error_at": _iso(self.last_error_at),
            "set_aside": {
                "count": self.set_aside,
                "reasons": [
                    {
                        **r.as_json(self.name, self.config_path),
                        "series": [s.as_json() for s in r.series[:SERIES_IN_JSON]],
                        "series_total": len(r.series),
                    }
                    for r in self.reasons
                ],
            },
            "houses": [h.as_json() for h in self.houses],
            "houses_error": self.houses_error,
            "exit": int(code),
            "meaning": code.meaning,
        }


def _in_step(house: HouseComparison) -> bool:
    """The same on both sides, or nothing to compare: every row of it set aside (or none)."""
    if house.same:
        return True
    return house.remote_id is None and house.compared_readings == house.compared_states == 0


def check_key(client: RemoteClient) -> None:
    """One cheap request that needs a key: a missing, wrong or revoked key raises AuthError."""
    client.get("summary/nodestate/", {"nodeId": -1})


def remote_status(
    config: Config, remote: RemoteConfig, engine: Engine, probe: bool = True
) -> RemoteStatus:
    """What is known about ``remote``; contacts it only when ``probe`` and it is enabled."""
    store = LocalStore(engine)
    st = RemoteStatus(remote.name, remote.resturl, remote.enabled)
    st.config_path = str(config.path) if config.path else None
    st.clock_warning = config.clock_warning
    st.local_schema = current_revision(engine)
    if not remote.enabled:
        return st  # never contacted, and no backlog: nothing is owed to it
    if probe:
        _probe(st, remote, engine)
    st.backlog = backlog(engine, store, remote.name)
    state = store.remote_state(remote.name)
    if state:
        st.last_success, st.last_error, st.last_error_at = (
            state.lastSuccess,
            state.lastError,
            state.lastErrorAt,
        )
    st.set_aside = store.rejected_count(remote.name)
    if st.set_aside:
        st.reasons = set_aside_reasons(engine, remote.name)
    return st


def _probe(st: RemoteStatus, remote: RemoteConfig, engine: Engine) -> None:
    client = RemoteClient(remote)
    st.contacted = True
    try:
        try:
            version = client.version()
            st.reachable = True
            st.clock_offset = client.clock_offset
            check_key(client)
            st.key_accepted = True
        except CogentError as exc:
            st.failure, st.reach_error = type(exc), str(exc)
            if isinstance(exc, AuthError):
                st.key_accepted = False
            return
        st.remote_schema = version.get("schema") if isinstance(version, dict) else None
        st.schema_problem = schema_advice(
            st.local_schema,
            st.remote_schema,
            remote_name=f"remote {remote.name!r}",
            local_url=redact(engine.url),
        )
        if st.schema_problem:
            return
        try:
            st.houses = Verifier(engine, client).compare()
        except CogentError as exc:
            st.houses_failure, st.houses_error = type(exc), str(exc)
    finally:
        client.close()


def status_exit(statuses: list[RemoteStatus]) -> Exit:
    enabled = [s for s in statuses if s.enabled]
    if not enabled:
        return Exit.USAGE
    return worst(s.exit_code() for s in enabled)


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
    if not st.enabled:
        return (
            f"remote {st.name} ({st.url}): disabled ([locations] {st.name} = 0); not contacted"
        )
    lines = [f"remote {st.name} ({st.url})"]
    if not st.contacted:
        lines.append("  reachable: not asked (--offline)")
    elif not st.reachable:
        lines.append(f"  reachable: NO - {st.reach_error}")
    elif st.key_accepted is False:
        lines.append(f"  reachable: yes; key REFUSED - {st.reach_error}")
    elif st.failure is not None:
        lines.append(f"  reachable: yes, but: {st.reach_error}")
    else:
        lines.append("  reachable: yes; key accepted")
    if st.contacted and st.reachable:
        lines.append(f"  clock: {describe_offset(st.clock_offset, st.clock_warning, st.name)}")
    if st.schema_problem:
        lines.append(f"  schema: MISMATCH - {st.schema_problem}")
    elif st.remote_schema is not None:
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
    lines.extend(_reason_lines(st))
    if st.houses_error:
        lines.append(f"  houses: cannot compare: {st.houses_error}")
    for house in st.houses:
        lines.append(f"  {house.summary_line()}")
    return "\n".join(lines)


def _reason_lines(st: RemoteStatus) -> list[str]:
    out = []
    for reason in st.reasons[:REASONS_SHOWN]:
        out.append(f"    {reason.count} rows: {reason.reason}")
        out.extend(f"      {s.describe()}" for s in reason.series[:SERIES_SHOWN])
        if len(reason.series) > SERIES_SHOWN:
            out.append(f"      ... and {len(reason.series) - SERIES_SHOWN} more series")
        out.append(f"      to fix: {reason.advice()}:")
        out.append(f"        {reason.retry_command(st.name, st.config_path)}")
    if len(st.reasons) > REASONS_SHOWN:
        rest = st.reasons[REASONS_SHOWN:]
        out.append(
            f"    ... and {sum(r.count for r in rest)} rows with {len(rest)} other reasons "
            f"('RestPusher.py status --json' lists them all)"
        )
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None
