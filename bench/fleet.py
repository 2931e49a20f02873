"""Many base stations pushing their backlogs to one server at the same moment.

Each simulated base station is a real pusher (RemoteSync with its own SQLite
database, site key and HTTP connection); they run as threads in a few worker
processes (``python -m bench.fleet CONFIG…``), all released at one wall-clock
instant. Every batch request's latency is recorded where the pusher sees it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict
from typing import Any

from base.config import load_config
from bench.pushrun import CycleResult, push_station


def _run(config_path: str, start_at: float, out: list[Any]) -> None:
    config = load_config(config_path)
    time.sleep(max(0.0, start_at - time.time()))
    try:
        result: CycleResult = push_station(config)
        out.append({"config": config_path, "result": asdict(result), "end": time.time()})
    except Exception as exc:  # reported, and the fleet's total will not add up
        out.append({"config": config_path, "error": f"{exc.__class__.__name__}: {exc}"})


def main(argv: list[str]) -> None:
    start_at = float(argv[0])
    out: list[Any] = []
    threads = [threading.Thread(target=_run, args=(path, start_at, out)) for path in argv[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
