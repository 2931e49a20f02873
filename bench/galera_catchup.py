"""Scenario ``catchup-galera`` of ``python -m bench``: the catch-up and its two direct copies
into one node of the three-node Galera cluster (bench/galera.py starts it with
etc/galera-cluster.sh when it is not running, and destroys it afterwards if it did)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from bench.galera import GaleraCluster, galera_missing
from bench.remote import MariaDB


def catchup_galera(opts: Any, url: str, prefix: str, res: Any) -> None:
    from bench.scenarios import Results, catchup, say

    port = make_url(url).port or 3311
    cluster = GaleraCluster(Path("/tmp/cogent-galera-bench"), first_port=port)
    started = False
    if not cluster.answers(1):
        why = galera_missing()
        if why:
            res.notes.append(f"catchup-galera skipped: {why}")
            return
        say(opts, "catch-up on Galera: starting the cluster (etc/galera-cluster.sh up)…")
        cluster.up()
        started = True
    try:
        sub = Results()
        catchup(opts, MariaDB(url, prefix=prefix), sub, baseline_too=False)
        res.figures["catchup_galera"] = sub.figures
        res.notes.extend(f"Galera: {n}" for n in sub.notes)
    finally:
        if started:
            cluster.destroy()
