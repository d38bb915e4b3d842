"""Fetch the MNIST-family files on request, into a per-user cache, each checked before use.

A file is streamed to ``<name>.part``, its size and checksum checked, and only then renamed to
its real name: a file under its real name in the cache is always a whole, verified one. The
built-in sets are also looked for where Debian's packages install them (no download needed).
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from netbuilder.core.datasets.base import DatasetError
from netbuilder.core.userdirs import user_dir

# progress(done, total or None, what): bytes of the file being fetched, and its name.
Progress = Callable[[int, "int | None", str], None]

_CHUNK = 1 << 16


class DownloadError(DatasetError):
    """A file could not be fetched, or what arrived is not the published file."""


@dataclass(frozen=True)
class Source:
    """A downloadable dataset: its files with their published checksums, and where to get them."""

    title: str
    files: Mapping[str, str]  # file name -> hex digest (32 digits: MD5, 64: SHA-256)
    mirrors: tuple[str, ...]  # base URLs ending in "/"
    system_dirs: tuple[str, ...] = ()  # where an OS package installs the same files


SOURCES: dict[str, Source] = {
    "fashion-mnist": Source(
        "Fashion-MNIST",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("/usr/share/datasets/fashion-mnist",),  # Debian: apt-get install dataset-fashion-mnist
    ),
    "mnist": Source(
        "MNIST",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",),
    ),
}


def user_cache_dir() -> Path:
    """Where downloaded datasets live: $NETBUILDER_DATA_DIR, else the platform's per-user cache."""
    folder = user_dir("cache", "NETBUILDER_DATA_DIR")
    return folder if os.environ.get("NETBUILDER_DATA_DIR") else folder / "datasets"


def locate(name: str, cache_dir: str | Path | None = None) -> Path | None:
    """The folder holding all of built-in dataset ``name``'s files (system folders first), or None."""
    source = _source(name)
    cache = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    for folder in (*map(Path, source.system_dirs), cache / name):
        if all((folder / f).is_file() for f in source.files):
            return folder
    return None


def fetch(
    name: str,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> Path:
    """The folder of built-in dataset ``name``: found locally, else downloaded into the cache."""
    found = locate(name, cache_dir)
    if found is not None:
        return found
    source = _source(name)
    dest = (Path(cache_dir) if cache_dir is not None else user_cache_dir()) / name
    download_files(mirrors or source.mirrors, source.files, dest, progress, timeout)
    return dest


def download_files(
    base_urls: Sequence[str],
    files: Mapping[str, str],
    dest_dir: str | Path,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> list[Path]:
    """Each of ``files`` (name -> checksum) into ``dest_dir``, trying ``base_urls`` in turn.

    Files already there with the right checksum are kept. Raises DownloadError naming the file
    and every URL tried if no mirror gives a file with the published checksum.
    """
    if isinstance(base_urls, str):
        base_urls = [base_urls]
    if not base_urls:
        raise DownloadError("no URL to download from")
    dest_dir = Path(dest_dir)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"{dest_dir}: cannot create the download folder ({exc.strerror or exc})") from None
    paths = []
    for fname, checksum in files.items():
        dest = dest_dir / fname
        if dest.is_file() and file_digest(dest, checksum) == checksum.lower():
            paths.append(dest)
            continue
        failures = []
        for base in base_urls:
            url = base.rstrip("/") + "/" + fname
            try:
                download_file(url, dest, checksum, progress, timeout)
                break
            except DownloadError as exc:
                failures.append(str(exc))
        else:
            raise DownloadError(f"{fname}: could not be downloaded:\n  " + "\n  ".join(failures))
        paths.append(dest)
    return paths


def download_file(
    url: str,
    dest: str | Path,
    checksum: str,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch ``url`` to ``dest`` via ``dest.part``; renamed into place only when whole and verified.

    On any failure the .part file is removed and nothing is left under ``dest``'s name.
    """
    dest = Path(dest)
    algo = _algorithm(checksum)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.new(algo)
    done = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if progress:
                progress(0, total, dest.name)
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total, dest.name)
        if total is not None and done != total:
            raise DownloadError(f"{url}: download incomplete: {done} of {total} bytes arrived")
        got = digest.hexdigest()
        if got != checksum.lower():
            raise DownloadError(
                f"{url}: checksum mismatch: {algo.upper()} of the {done} bytes received is {got}, "
                f"the published one is {checksum.lower()} (a corrupt or altered file)"
            )
        os.replace(part, dest)
    except DownloadError:
        _remove(part)
        raise
    except urllib.error.HTTPError as exc:
        _remove(part)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        _remove(part)
        raise DownloadError(f"{url}: cannot connect ({exc.reason})") from None
    except (OSError, ValueError) as exc:  # network errors mid-transfer, a bad URL, a full disk
        _remove(part)
        raise DownloadError(f"{url}: download failed after {done} bytes ({exc})") from None
    except BaseException:  # interrupted (Ctrl+C, a progress callback cancelling): leave no partial file
        _remove(part)
        raise
    return dest


def file_digest(path: str | Path, like: str) -> str:
    """Hex digest of the file with the algorithm ``like`` implies (MD5 for 32 digits, SHA-256 for 64)."""
    digest = hashlib.new(_algorithm(like))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _algorithm(checksum: str) -> str:
    n = len(checksum) if isinstance(checksum, str) else 0
    if n not in (32, 64) or any(c not in "0123456789abcdefABCDEF" for c in checksum):
        raise DownloadError(f"checksum must be 32 (MD5) or 64 (SHA-256) hex digits, got {checksum!r}")
    return "md5" if n == 32 else "sha256"


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise DatasetError(f"unknown built-in dataset {name!r}; known: {', '.join(SOURCES)}")
    return SOURCES[name]


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
