"""What every request handler needs: the settings and the database engine."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy import Engine

from base.db import make_engine
from rest.settings import Settings


@dataclass
class TouchThrottle:
    """Remembers when each key's lastUsed was last written, so it is written rarely."""

    interval: float
    _last: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def due(self, key_id: int) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key_id)
            if last is not None and now - last < self.interval:
                return False
            self._last[key_id] = now
            return True


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    touch: TouchThrottle


def build_state(settings: Settings) -> AppState:
    kwargs: dict[str, object] = {}
    if not settings.db_url.startswith("sqlite"):
        kwargs = {"pool_size": settings.pool_size, "max_overflow": settings.pool_overflow}
    engine = make_engine(settings.db_url, **kwargs)
    return AppState(settings, engine, TouchThrottle(settings.touch_interval))


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.cogent
    return state
