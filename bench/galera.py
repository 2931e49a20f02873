"""The catch-up against a three-node MariaDB Galera cluster on loopback (issue 17): the same
three copies as the MariaDB catch-up, into one node of the cluster, which certifies and
replicates every commit to the other two before answering."""

from __future__ import annotations

import subprocess
from typing import Any

import pymysql
from sqlalchemy import make_url

from bench.remote import REPO, MariaDB

SCRIPT = REPO / "etc" / "galera-cluster.sh"


def _answers(url: str) -> bool:
    u = make_url(url)
    try:
        pymysql.connect(host=u.host or "127.0.0.1", port=u.port or 3311,
                        user=u.username or "root", password=u.password or "",
                        connect_timeout=2).close()
        return True
    except pymysql.Error:
        return False


def catchup_galera(opts: Any, url: str, prefix: str, res: Any) -> None:
    """Scenario ``catchup-galera``; brings the cluster up (and destroys it after) when the
    node at ``url`` does not answer."""
    from bench.scenarios import Results, catchup, say

    started = False
    if not _answers(url):
        say(opts, "catch-up on Galera: starting the cluster (etc/galera-cluster.sh up)…")
        up = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, check=False)
        if up.returncode != 0:
            res.notes.append(f"catchup-galera skipped: the cluster did not start: "
                             f"{(up.stderr or up.stdout).strip()[-500:]}")
            return
        started = True
    try:
        sub = Results()
        catchup(opts, MariaDB(url, prefix=prefix), sub, baseline_too=False)
        res.figures["catchup_galera"] = sub.figures
        res.notes.extend(f"Galera: {n}" for n in sub.notes)
    finally:
        if started:
            subprocess.run([str(SCRIPT), "destroy"], capture_output=True, check=False)
