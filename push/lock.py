"""One pusher per database: an exclusive lock on a lock file.

``flock`` locks vanish with the process, so a ``kill -9`` never leaves a stale
lock behind that would need a person to clear it. The holder writes its pid into
the file, so ``RestPusher.py stop`` finds a daemon whoever started it (systemd, a
shell, ``start``), and the message a second pusher gets names what stops the first.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from base.errors import AlreadyRunning, ConfigError


class PushLock:
    def __init__(self, path: str | os.PathLike[str], stop_command: str = "RestPusher.py stop"):
        self.path = Path(path)
        self.stop_command = stop_command
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
            pid = _pid_in(fd)
            os.close(fd)
            raise AlreadyRunning(
                f"another pusher (pid {pid or '?'}) is already working on this database "
                f"(lock {self.path}); stop it first with {how_to_stop(pid, self.stop_command)}"
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


def how_to_stop(pid: int | None, stop_command: str = "RestPusher.py stop") -> str:
    """The commands that stop the pusher ``pid``, for messages."""
    unit = systemd_unit(pid) if pid else None
    if unit is None:
        return f"'{stop_command}' or 'systemctl stop cogent-restpusher' (if systemd runs it)"
    return f"'{unit.stop_command}' (systemd runs it) or '{stop_command}'"


def lock_holder(path: str | os.PathLike[str]) -> int | None:
    """The pid of the process holding the lock at ``path``, or None when nobody holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _pid_in(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode(errors="replace").strip())
    except ValueError:
        return None


class Unit:
    """A systemd unit a process runs in (system or per-user manager)."""

    def __init__(self, name: str, user: bool):
        self.name, self.user = name, user

    @property
    def stop_command(self) -> str:
        return f"systemctl {'--user ' if self.user else ''}stop {self.name}"

    @property
    def start_command(self) -> str:
        return f"systemctl {'--user ' if self.user else ''}start {self.name}"


def systemd_unit(pid: int) -> Unit | None:
    """The systemd service ``pid`` runs in, from /proc/PID/cgroup; None outside one."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    return unit_of_cgroup(text)


def unit_of_cgroup(text: str) -> Unit | None:
    """``0::/system.slice/cogent-restpusher.service`` → the unit cogent-restpusher.service."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        parts = [p for p in path.split("/") if p]
        services = [p for p in parts if p.endswith(".service")]
        if not services:
            continue
        name = services[-1]
        if name.startswith("user@"):
            return None  # a login session's manager, not a unit of its own
        return Unit(name, user=any(p.startswith("user@") for p in parts))
    return None
