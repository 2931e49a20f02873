"""Writing a key into synchronise.conf (``RestPusher.py login``) without disturbing the rest."""

from __future__ import annotations

import os
from pathlib import Path


def write_key(path: Path, remote: str, key: str) -> None:
    """Set ``apikey`` in the ``[remote]`` section of the configuration file, keeping every
    other line and comment; the file becomes mode 0600 (it holds a key)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines)
                  if line.strip() == f"[{remote}]"), None)
    if start is None:
        lines += ["\n" if lines and not lines[-1].endswith("\n") else "", f"[{remote}]\n",
                  f"apikey = {key}\n"]
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].lstrip().startswith("[")), len(lines))
        at = next((i for i in range(start + 1, end)
                   if lines[i].split("=", 1)[0].strip() == "apikey"), None)
        if at is None:
            lines.insert(start + 1, f"apikey = {key}\n")
        else:
            lines[at] = f"apikey = {key}\n"
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("".join(lines))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
