"""One pusher per database: an exclusive lock on a lock file.

``flock`` locks vanish with the process, so a ``kill -9`` never leaves a stale
lock behind that would need a person to clear it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from base.errors import AlreadyRunning, ConfigError


class PushLock:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"cannot open lock file {str(self.path)!r}: {exc.strerror}; "
                "fix its directory's permissions or set lockfile",
                section="general",
                key="lockfile",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise AlreadyRunning(
                f"another pusher (pid {holder}) is already working on this database "
                f"(lock {self.path}); stop it first with 'RestPusher.py stop'"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> PushLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
