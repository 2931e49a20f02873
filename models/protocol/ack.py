"""The acknowledgement of a batch: what the server says it did with every row sent.

The server answers ``POST /rest/sync/batch/`` with::

    {"batch": "<sha256 hex of the request body, decompressed>", "rows": 5000,
     "stored": 4990, "unchanged": 0,
     "rejected": [{"kind": "reading", "index": 17, "count": 10,
                   "code": "bad_value", "reason": "value is NaN"}]}

``rejected`` holds *runs*: rows ``index`` … ``index + count - 1`` of that kind, refused for
one reason, so the reply stays small whatever the batch holds (at most
:data:`MAX_RUNS` runs; a batch that would need more is refused whole, 422).

The pusher moves its cursor only on an acknowledgement that :func:`check_ack` accepts:
the digest of what it sent, exactly the rows it sent, every row accounted for once
(stored + unchanged + rejected = rows), runs inside the batch and not overlapping.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

MAX_RUNS: Final = 10_000


def batch_digest(body: bytes) -> str:
    """The batch identifier both sides compute: sha256 of the decompressed request body."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class RejectedRun:
    kind: str  # "reading" or "nodestate"
    index: int  # first row of the run, counted within its kind in the batch
    count: int
    code: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "index": self.index, "count": self.count,
                "code": self.code, "reason": self.reason}


@dataclass(frozen=True)
class Ack:
    batch: str
    rows: int
    stored: int
    unchanged: int
    rejected: tuple[RejectedRun, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"batch": self.batch, "rows": self.rows, "stored": self.stored,
                "unchanged": self.unchanged, "rejected": [r.as_json() for r in self.rejected]}

    def rejected_rows(self) -> Iterable[tuple[int, RejectedRun]]:
        """(row index, its run) for every rejected row."""
        for run in self.rejected:
            for i in range(run.index, run.index + run.count):
                yield i, run


class TooManyRuns(ValueError):
    """The rejections of one batch need more than :data:`MAX_RUNS` runs."""


def merge_runs(items: Iterable[RejectedRun]) -> tuple[RejectedRun, ...]:
    """Runs sorted (readings first) with neighbours alike merged and rows refused twice
    counted once; :class:`TooManyRuns` past :data:`MAX_RUNS`."""
    out: list[RejectedRun] = []
    for run in sorted(items, key=lambda r: (r.kind != "reading", r.index)):
        last = out[-1] if out else None
        if last is not None and last.kind == run.kind:
            end = last.index + last.count
            if run.index < end:  # overlaps the last run: keep only what is new
                if run.index + run.count <= end:
                    continue
                run = RejectedRun(run.kind, end, run.index + run.count - end, run.code,
                                  run.reason)
            if run.index == end and (last.code, last.reason) == (run.code, run.reason):
                out[-1] = RejectedRun(last.kind, last.index, last.count + run.count,
                                      last.code, last.reason)
                continue
        if len(out) == MAX_RUNS:
            raise TooManyRuns(
                f"the rows refused in this batch need more than {MAX_RUNS} runs to describe; "
                f"send smaller batches")
        out.append(run)
    return tuple(out)


class BadAck(ValueError):
    """A reply that does not acknowledge the batch that was sent (the message says how)."""


def _count(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    if type(value) is not int or value < 0:
        raise BadAck(f"{name!r} is {value!r}, not a count")
    return value


def check_ack(doc: Any, *, digest: str, rows: int, kind: str) -> Ack:
    """The reply ``doc`` to a batch of ``rows`` rows of ``kind`` whose body had ``digest``,
    checked: every row accounted for exactly once, or :class:`BadAck`."""
    if not isinstance(doc, dict):
        raise BadAck(f"the reply is a {type(doc).__name__}, not an acknowledgement object")
    if doc.get("batch") != digest:
        raise BadAck("the reply does not name this batch (its 'batch' digest differs or is "
                     "missing): it acknowledges something else")
    if _count(doc, "rows") != rows:
        raise BadAck(f"the reply is for {doc['rows']} rows; {rows} were sent")
    stored, unchanged = _count(doc, "stored"), _count(doc, "unchanged")
    raw = doc.get("rejected")
    if not isinstance(raw, list):
        raise BadAck(f"'rejected' is {raw!r}, not a list")
    found: list[RejectedRun] = []
    for item in raw:
        if not isinstance(item, dict):
            raise BadAck(f"a rejection is {item!r}, not an object")
        index, count = _count(item, "index"), _count(item, "count")
        code, reason = item.get("code"), item.get("reason")
        if item.get("kind") != kind or count < 1 or index + count > rows:
            raise BadAck(f"rejection {item!r} is not a run of this batch's {rows} {kind} rows")
        if not isinstance(code, str) or not isinstance(reason, str):
            raise BadAck(f"rejection {item!r} lacks a code or a reason")
        found.append(RejectedRun(kind, index, count, code, reason))
    found.sort(key=lambda r: r.index)
    for before, after in itertools.pairwise(found):
        if before.index + before.count > after.index:
            raise BadAck(f"rows {after.index}… are rejected twice")
    rejected = sum(r.count for r in found)
    if stored + unchanged + rejected != rows:
        raise BadAck(f"the reply accounts for {stored} stored + {unchanged} unchanged + "
                     f"{rejected} rejected = {stored + unchanged + rejected} rows; "
                     f"{rows} were sent")
    return Ack(digest, rows, stored, unchanged, tuple(found))
