"""The uint8 cache on disk that a set too large for memory trains from, memory-mapped.

An image folder or gzip IDX set whose float32 size is above ``map_threshold()`` (a quarter of
this machine's memory; ``$NETBUILDER_MAP_DATA_ABOVE`` bytes overrides it, 0 maps every such set)
is converted once into ``.npy`` files in a folder of ``core.userdirs.data_cache_dir()``, one
folder per source, and read from there as ``MappedImages`` (``core.datasets.mapped``). Smaller
sets are loaded into memory as before and never cached.

A folder's ``manifest.json``, written last, records the key (the loader's options and a digest of
every source file's path, size and modification time), the arrays' shapes, dtypes and byte sizes,
and the loader's own notes. Opening checks all of it: a different key, a file whose size is not
what its header and shape say (truncated), or a manifest that cannot be read means the cache is
rebuilt, never trusted. A build writes temporary files, renames them into place, then writes the
manifest; files are read with ``allow_pickle=False``. A source modified within two seconds of the
build (a file still being written) makes that build untrusted next time, as git treats racy files.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from netbuilder.core.atomic import fsync_folder, temp_path, write_atomically
from netbuilder.core.datasets.base import DatasetError

log = logging.getLogger("netbuilder.datasets")

FORMAT = 1  # the manifest's layout; another one is rebuilt
MAP_VARIABLE = "NETBUILDER_MAP_DATA_ABOVE"
MANIFEST = "manifest.json"
RACY_NS = 2_000_000_000  # a source this close to the build's start may have changed during it
_CRC_MAX = 64 << 20  # arrays up to this size (labels, per-image notes) are also checksummed
_DISK_MARGIN = 256 << 20  # left free on the cache's disk
_WHEN_UNKNOWN = 2 << 30  # the threshold where the machine's memory cannot be read

# progress(done, total, what), as the loaders report it.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class CacheEvent:
    """What watchers (``watch``) hear: a build's progress, or with ``note`` a cache ready for use."""

    what: str
    done: int
    total: int
    note: str | None = None


_watchers: list[Callable[[CacheEvent], None]] = []


def map_threshold() -> int:
    """Float32 bytes above which a folder or IDX set is memory-mapped from the cache."""
    value = os.environ.get(MAP_VARIABLE)
    if value:
        try:
            return max(0, int(value))
        except ValueError:
            raise DatasetError(f"${MAP_VARIABLE} must be a number of bytes, got {value!r}") from None
    from netbuilder.core.memory import machine_memory

    memory = machine_memory()
    return memory // 4 if memory else _WHEN_UNKNOWN


def should_map(float_bytes: int) -> bool:
    """Whether a set taking ``float_bytes`` as float32 is read from a memory-mapped cache."""
    return float_bytes > map_threshold()


def cache_root() -> Path:
    from netbuilder.core.userdirs import data_cache_dir

    return data_cache_dir()


def entry_folder(kind: str, sources: Iterable[str | Path], label: str) -> Path:
    """The cache folder of one source (its kind and resolved paths); its options and file stamps
    are in the manifest's key, so a changed source is rebuilt in the same place."""
    paths = [str(Path(p).expanduser().resolve()) for p in sources]
    digest = hashlib.sha256(json.dumps([kind, paths]).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._")[:40] or kind
    return cache_root() / f"{kind}-{slug}-{digest}"


def source_stamp(paths: Iterable[str | Path]) -> tuple[str, int]:
    """(digest of every file's path, size and modification time, the newest modification in ns)."""
    h = hashlib.sha256()
    newest = 0
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as exc:
            raise DatasetError(f"{p}: cannot be read ({exc.strerror or exc})") from None
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        newest = max(newest, st.st_mtime_ns)
    return h.hexdigest(), newest


@dataclass
class Cached:
    """An opened cache: its folder, read-only memory maps by name, the loader's notes, its size."""

    folder: Path
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    nbytes: int

    def note(self) -> str:
        """The line the CLI log and the Data tab show: where the set is cached and how big it is."""
        from netbuilder.core.memory import size_text

        return f"cached as uint8 in {shown_path(self.folder)} ({size_text(self.nbytes)})"


def shown_path(path: Path) -> str:
    """``path`` with the home folder written as ``~``."""
    try:
        return "~/" + Path(path).relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


def open_cache(folder: Path, key: Mapping[str, Any]) -> tuple[Cached | None, str | None]:
    """(the cache in ``folder`` if it is complete and built for ``key``, else None; why not, or
    None where there is simply no cache yet)."""
    path = folder / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"its manifest cannot be read ({exc})"
    try:
        manifest = json.loads(text)
    except ValueError:
        return None, "its manifest is not valid JSON"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None, "its manifest is of another format"
    if manifest.get("key") != _plain(key):
        return None, "the source or the loading options changed"
    built, newest = manifest.get("built_ns"), manifest.get("newest_ns")
    if not isinstance(built, int) or not isinstance(newest, int) or newest >= built - RACY_NS:
        return None, "a source file was being modified while it was built"
    entries = manifest.get("arrays")
    if not isinstance(entries, dict) or not isinstance(manifest.get("meta"), dict):
        return None, "its manifest is incomplete"
    arrays, total = {}, path.stat().st_size
    for name, entry in entries.items():
        array, why = _open_array(folder, name, entry)
        if array is None:
            return None, why
        arrays[name] = array
        total += entry["bytes"]
    return Cached(folder, arrays, manifest["meta"], total), None


def _open_array(folder: Path, name: str, entry: Any) -> tuple[np.ndarray | None, str]:
    """A read-only memory map of one cached array, checked against its manifest entry."""
    if not (isinstance(entry, dict) and isinstance(entry.get("file"), str) and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("shape"), list) and isinstance(entry.get("dtype"), str)):
        return None, f"its manifest's entry for {name!r} is malformed"
    file = entry["file"]
    if Path(file).name != file or file.startswith("."):
        return None, f"its manifest names an odd file {file!r}"
    path = folder / file
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset, size = f.tell(), os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return None, f"{file} is missing"
    except (OSError, ValueError) as exc:
        return None, f"{file} is not a readable .npy file ({exc})"
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if list(shape) != entry["shape"] or dtype.str != entry["dtype"] or fortran:
        return None, f"{file} holds {dtype} {shape}, not what its manifest says"
    if size != expected or size != entry["bytes"]:
        return None, f"{file} is {size:,} bytes where its header says {expected:,} (truncated or damaged)"
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        return None, f"{file} cannot be mapped ({exc})"
    if "crc32" in entry and zlib.crc32(np.ascontiguousarray(array).view(np.uint8).reshape(-1)) != entry["crc32"]:
        return None, f"{file}'s contents do not match its checksum"
    return array, ""


def build_cache(folder: Path, key: Mapping[str, Any], newest_ns: int, started_ns: int,
                arrays: Mapping[str, tuple[tuple[int, ...], Any]],
                fill: Callable[[dict[str, np.ndarray]], dict[str, Any]]) -> Cached:
    """Make the cache in ``folder``: ``arrays`` (name -> (shape, dtype)) are created as writable
    memory maps under temporary names, ``fill(maps)`` writes them and returns the loader's notes
    (the manifest's ``meta``), and only then are they renamed into place and the manifest written.
    ``started_ns`` is when the sources were stamped (``newest_ns`` their newest modification)."""
    from netbuilder.core.memory import size_text

    needed = sum(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize for shape, dtype in arrays.values())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / MANIFEST)  # whatever is here is no longer a valid cache
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot make the data cache ({exc.strerror or exc}); set "
                           f"${_cache_variable()} to a writable folder") from None
    if needed + _DISK_MARGIN > free:
        raise DatasetError(f"{folder}: the uint8 cache of this dataset needs {size_text(needed)} but its disk has "
                           f"{size_text(free)} free; free some space or set ${_cache_variable()} to another disk")
    temps: dict[str, Path] = {}
    try:
        maps = {}
        for name, (shape, dtype) in arrays.items():
            temps[name] = temp_path(folder / f"{name}.npy")
            maps[name] = np.lib.format.open_memmap(temps[name], mode="w+", dtype=dtype, shape=tuple(shape))
        meta = fill(maps)
        entries = {}
        for name, m in maps.items():
            m.flush()
            entry = {"file": f"{name}.npy", "shape": list(m.shape), "dtype": m.dtype.str}
            if m.nbytes <= _CRC_MAX:
                entry["crc32"] = zlib.crc32(np.ascontiguousarray(m).view(np.uint8).reshape(-1))
            entries[name] = entry
        del m
        maps.clear()  # unmapped before the files are renamed (Windows cannot rename a mapped file)
        for name, tmp in temps.items():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            entries[name]["bytes"] = os.stat(tmp).st_size
            os.replace(tmp, folder / entries[name]["file"])
        fsync_folder(folder)
        manifest = {"format": FORMAT, "key": _plain(key), "arrays": entries, "meta": _plain(meta),
                    "built_ns": started_ns, "newest_ns": newest_ns,
                    "built": time.strftime("%Y-%m-%d %H:%M:%S")}
        text = json.dumps(manifest, indent=1).encode()
        write_atomically(folder / MANIFEST, lambda fh: fh.write(text))
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot write the data cache ({exc.strerror or exc})") from None
    finally:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    cached, why = open_cache(folder, key)
    if cached is None:  # only when a source changed during the build: it is used once, rebuilt next time
        cached, _ = _open_unchecked(folder, manifest)
        log.info("%s: %s; the cache is rebuilt next time", shown_path(folder), why)
    return cached


def _open_unchecked(folder: Path, manifest: dict) -> tuple[Cached, None]:
    arrays = {name: np.load(folder / e["file"], mmap_mode="r", allow_pickle=False)
              for name, e in manifest["arrays"].items()}
    total = sum(e["bytes"] for e in manifest["arrays"].values())
    return Cached(folder, arrays, manifest["meta"], total), None


def cached_or_built(kind: str, identity: list[Path], files: list[Path], label: str, options: Mapping[str, Any],
                    arrays: Callable[[], Mapping[str, tuple[tuple[int, ...], Any]]],
                    fill: Callable[[dict[str, np.ndarray]], dict[str, Any]],
                    valid: Callable[[dict[str, Any]], bool] = lambda meta: True) -> Cached:
    """The cache of the source ``identity`` names (its folders or files), read from ``files`` with
    ``options``: built (``arrays()`` says what to make and ``fill`` makes it, returning the notes
    that ``valid`` accepts on later loads) when there is none or it cannot be trusted; why it was
    rebuilt is logged."""
    started = time.time_ns()
    digest, newest = source_stamp(files)
    key = {"kind": kind, "options": dict(options), "sources": digest, "files": len(files)}
    folder = entry_folder(kind, identity, label)
    cached, why = open_cache(folder, key)
    if cached is not None and not valid(cached.meta):
        cached, why = None, "its manifest's notes are malformed"  # unmapped before its files are replaced
    if cached is None:
        with _build_lock(folder):
            cached, _ = open_cache(folder, key)  # another process (a distributed run's) may have built it meanwhile
            if cached is None or not valid(cached.meta):
                if why:
                    log.warning("%s: rebuilding the data cache: %s", shown_path(folder), why)
                cached = build_cache(folder, key, newest, started, arrays(), fill)
    announce(label, cached.note())
    return cached


@contextlib.contextmanager
def _build_lock(folder: Path):
    """Held while the cache in ``folder`` is built, so processes loading one set at once (the ranks
    of a distributed run) build it once; where there is no ``fcntl`` (Windows) builds are not serialised."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / ".lock", "ab")
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot make the data cache ({exc.strerror or exc}); set "
                           f"${_cache_variable()} to a writable folder") from None
    with handle:
        try:
            import fcntl
        except ImportError:
            fcntl = None
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        yield


# --- progress -----------------------------------------------------------------------------------
def watch(callback: Callable[[CacheEvent], None]) -> Callable[[], None]:
    """Have ``callback(event)`` called (on the loading thread) as any cache is built (every
    percent) and when one is ready; returns the function that stops it. The Data tab shows these."""
    _watchers.append(callback)

    def unwatch() -> None:
        with contextlib.suppress(ValueError):
            _watchers.remove(callback)
    return unwatch


class BuildProgress:
    """Reports a cache build's progress to the loader's callback and the watchers, and logs it
    every tenth of the way (the CLI shows those lines)."""

    def __init__(self, what: str, total: int, progress: Progress | None = None):
        self.what, self.total, self.progress = what, max(1, total), progress
        self._logged = self._told = -1

    def __call__(self, done: int) -> None:
        if self.progress is not None:
            self.progress(done, self.total, self.what)
        percent = done * 100 // self.total
        if percent != self._told:
            self._told = percent
            _tell(CacheEvent(self.what, done, self.total))
        if percent // 10 != self._logged:
            self._logged = percent // 10
            log.warning("%s: %d%% (%s of %s)", self.what, percent // 10 * 10, f"{done:,}", f"{self.total:,}")


def announce(what: str, note: str) -> None:
    """Tell the watchers that the images of ``what`` are ready, read as ``note`` says."""
    _tell(CacheEvent(what, 1, 1, note))


def plan_note(n_images: int, shape) -> str | None:
    """For the Data tab before loading: how a set of ``n_images`` of (C, H, W) ``shape`` will be
    read, where it is too large for memory (None where it is loaded as usual)."""
    from netbuilder.core.memory import size_text

    stored = int(n_images) * int(np.prod(shape, dtype=np.int64))
    if not should_map(stored * 4):
        return None
    return (f"{int(n_images):,} images take {size_text(stored * 4)} as float32, more than the "
            f"{size_text(map_threshold())} loaded into memory: training reads them as uint8 from disk "
            f"({size_text(stored)}, cached in {shown_path(cache_root())} where they are not raw IDX files), "
            "a batch at a time")


def _tell(event: CacheEvent) -> None:
    for watcher in list(_watchers):
        watcher(event)


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists), so a key compares equal to its stored copy."""
    return json.loads(json.dumps(value))


def _cache_variable() -> str:
    from netbuilder.core.userdirs import CACHE_VARIABLE

    return CACHE_VARIABLE
