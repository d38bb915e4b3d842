"""Distrust of files a user hands over: only regular files are read, sizes are bounded, and an
``.npz`` is checked entry by entry against what its headers declare before any array is read.

A FIFO or ``/dev/zero`` given as a project would hang or fill the memory; a zip entry that
inflates to 10 GB, or a ``.npy`` header claiming 10 GB while 1 MB is stored, would fail deep in
numpy. Every refusal is one line naming the file, the entry and both sizes.
"""
from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from netbuilder.core.memory import machine_memory, size_text

PROJECT_FILE_LIMIT = 64 << 20  # a project is JSON text: tens of kilobytes, a megabyte at most
_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def check_regular_file(path: Path, error: type[Exception], what: str, limit: int | None = None) -> int:
    """The size of ``path`` if it is a regular file within ``limit`` bytes; else ``error``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise error(f"{path}: is {kind}, not a {what}")
    if limit is not None and st.st_size > limit:
        raise error(f"{path}: {size_text(st.st_size)} is too large for a {what} (at most {size_text(limit)})")
    return st.st_size


def memory_cap() -> int:
    """The most bytes one file's arrays may unpack to: half this machine's memory (4 GiB if unknown)."""
    total = machine_memory()
    return total // 2 if total else 4 << 30


def check_npz(path: Path, error: type[Exception], cap: int | None = None) -> None:
    """Check every ``.npy`` entry of the zip ``path`` before reading it: its stored size against
    its header's shape and dtype, and the total against ``cap`` bytes (``memory_cap()``)."""
    cap = memory_cap() if cap is None else cap
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return  # not a zip: the reader after this gives its own, precise message
    total = 0
    with archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            entry = info.filename[:-4]
            if info.file_size > cap:
                raise error(f"{path}: entry {entry!r} unpacks to {size_text(info.file_size)}, more than the "
                            f"{size_text(cap)} allowed (half this machine's memory)")
            try:
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    shape, _, dtype = (np.lib.format.read_array_header_1_0(member) if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0(member))
                    header = member.tell()
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise error(f"{path}: entry {entry!r} is not a valid array: {exc}") from None
            if dtype.hasobject:
                continue  # refused later, with the reason (pickled objects)
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            stored = info.file_size - header
            if declared != stored:
                raise error(f"{path}: entry {entry!r} declares {dtype} {tuple(shape)} ({size_text(declared)}) "
                            f"but holds {size_text(stored)}: the file is damaged or not what it claims")
            total += declared
            if total > cap:
                raise error(f"{path}: its arrays unpack to more than {size_text(cap)} (half this machine's "
                            f"memory), {size_text(total)} so far at entry {entry!r}")
