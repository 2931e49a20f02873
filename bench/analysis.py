"""The prose of docs/BENCHMARKS.md: how to reproduce, what limits each figure, what was done."""

from __future__ import annotations

from typing import Any

from bench.scenarios import Options


def analysis(g: dict[str, Any], opts: Options) -> str:
    return "(analysis to be written)"
