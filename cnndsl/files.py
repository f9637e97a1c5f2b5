"""Files on disk: the one atomic writer (used by `cnndsl build`, `graph`, `fmt` and `export`), and the path
helpers that follow symbolic links without ever raising anything but OSError (a loop of links included)."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path


def real_path(path: str | os.PathLike) -> Path:
    """`path` with every symbolic link followed, absolute. The path need not exist; a loop of symbolic links is
    an OSError (ELOOP), never the RuntimeError of Path.resolve."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise
    return Path(os.path.realpath(path))


def file_key(path: str | os.PathLike) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file `path` names (through symbolic links), or None when it cannot be read:
    two paths with the same key are the same file, whatever their names (links, hard links, `./`)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def write_atomically(path: str | os.PathLike, data: str | bytes) -> None:
    """Write `data` (text is written as UTF-8 with its line ends as they are) to `path` so that a failure never
    leaves half a file: through a temporary file in the same folder, then one rename over the target.

    A symbolic link is written through: the file it points to is replaced and the link stays. A target that
    exists and is not a regular file (/dev/null, a FIFO) is written into, never replaced. A replaced file keeps
    its permission bits; a new one gets 0o666 less the umask. Raises OSError (ELOOP for a loop of links)."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    target = real_path(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with open(target, "wb") as f:
            f.write(payload)
        return
    tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode & 0o777)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
