"""Writing a file atomically: readers see the old file or the new one, never half of either.

The data goes to a temporary file in the same folder, is flushed to disk, and is renamed over
the destination in one step (os.replace). Project files, weights and checkpoints all use this.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# Our temporary files: ".<name>.<8 hex digits>.tmp" beside the destination.
_TEMP = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
_STARTED = time.time()  # a temporary file older than this belongs to a process that is gone


def temp_path(dest: Path) -> Path:
    """A fresh temporary name beside ``dest``, after removing stale ones left in that folder."""
    clean_stale_temps(dest.parent)
    return dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove temporary files of our own naming that a killed process left in ``folder``: only
    those named as ours and older than this process (a write going on elsewhere is younger)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not _TEMP.match(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < _STARTED:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace ``path`` with what ``write(fh)`` writes to a binary file handle.

    Keeps an existing file's permissions (a new file gets the umask's). On any error the
    temporary file is removed, the old file is untouched, and the exception (OSError for
    I/O problems) propagates for the caller to phrase.
    """
    path = Path(path)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename durable where the platform allows it (POSIX); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
