"""``python -m tests.reliability.figures [FILE]``: the figures table of docs/RELIABILITY.md.

Every reliability test appends what it did to var/reliability/figures.jsonl (see
``kit.record``). This prints the latest record of each (test, backend) as a Markdown
table: what was injected, how many rows were compared, and the rows lost, duplicated
or different — the numbers docs/RELIABILITY.md quotes after a `make torture` run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.reliability.kit import FIGURES

COMPARISON_ONLY = ("rows", "lost", "extra", "different", "duplicated", "set_aside")


def latest(path: Path) -> list[dict[str, Any]]:
    """The last record of each (test, backend), in the order the tests first appear."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            key = (record["test"], str(record.get("backend", "")))
            by_key.pop(key, None)  # re-inserted last: the newest run wins, in run order
            by_key[key] = record
    return list(by_key.values())


def _injected(record: dict[str, Any]) -> str:
    skip = {"test", "at", "backend", "comparison"}
    parts = []
    for k, v in record.items():
        if k in skip:
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{kk} {vv}" for kk, vv in v.items())
        elif isinstance(v, list):
            v = f"{len(v)} items"
        parts.append(f"{k.replace('_', ' ')}: {v}")
    return "; ".join(parts)


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| Test | Backend | What it did | Rows compared | Lost | Duplicated | Different "
        "| Set aside | Run at |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        c = r.get("comparison") or {}
        cells = [str(c[k]) if k in c else "-" for k in COMPARISON_ONLY]
        rows, lost, extra, different, duplicated, set_aside = cells
        if c:
            duplicated = str(int(extra) + int(duplicated))
        lines.append(
            f"| {r['test']} | {r.get('backend', '')} | {_injected(r)} | {rows} | {lost} | "
            f"{duplicated} | {different} | {set_aside} | {r['at']} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else FIGURES
    if not path.exists():
        print(f"no figures at {path}: run `make test` or `make torture` first", file=sys.stderr)
        return 1
    print(table(latest(path)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
