"""Downloads, against a local HTTP server on 127.0.0.1 serving generated IDX files (never the internet)."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from netbuilder.core.datasets import download, load_dataset
from netbuilder.core.datasets.download import DownloadError, Source, download_file, download_files, fetch
from tests.core.test_idx import idx_bytes

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")


def generated_files() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    out = {}
    for split, n in (("train", 30), ("t10k", 10)):
        x = rng.integers(0, 256, (n, 6, 6)).astype(np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        out[f"{split}-images-idx3-ubyte.gz"] = gzip.compress(idx_bytes(x), mtime=0)
        out[f"{split}-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(y), mtime=0)
    return out


class Server:
    """Serves ``files`` by name; ``truncate`` names files sent cut short under their full Content-Length."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.truncate: set[str] = set()
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append(self.path)
                body = outer.files.get(name) if self.path.startswith("/data/") else None
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if name in outer.truncate else body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def served():
    files = generated_files()
    with Server(files) as server:
        yield server, files


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_downloads_verify_and_report_progress(served, tmp_path):
    server, files = served
    seen = []
    paths = download_files(server.url, {n: md5(files[n]) for n in FILES}, tmp_path / "cache",
                           progress=lambda done, total, what: seen.append((what, done, total)))
    assert [p.name for p in paths] == list(FILES)
    assert all(p.read_bytes() == files[p.name] for p in paths)
    assert leftovers(tmp_path / "cache") == sorted(FILES)  # no .part files
    for name in FILES:
        mine = [(d, t) for w, d, t in seen if w == name]
        assert mine[0] == (0, len(files[name])) and mine[-1] == (len(files[name]), len(files[name]))


def test_verified_files_are_not_fetched_again(served, tmp_path):
    server, files = served
    sums = {n: md5(files[n]) for n in FILES}
    download_files(server.url, sums, tmp_path)
    server.requests.clear()
    download_files(server.url, sums, tmp_path)
    assert server.requests == []


def test_a_corrupt_download_is_rejected_and_leaves_nothing(served, tmp_path):
    server, files = served
    name = FILES[0]
    server.files[name] = files[name][:-5] + b"XXXXX"
    with pytest.raises(DownloadError, match=rf"{name}: checksum mismatch: MD5 .* is {md5(server.files[name])}, "
                                            rf"the published one is {md5(files[name])}"):
        download_file(server.url + name, tmp_path / name, md5(files[name]))
    assert leftovers(tmp_path) == []


def test_a_truncated_download_is_rejected_and_leaves_nothing(served, tmp_path):
    server, files = served
    name = FILES[0]
    server.truncate.add(name)
    with pytest.raises(DownloadError, match=rf"incomplete: {len(files[name]) // 2} of {len(files[name])} bytes"):
        download_files(server.url, {name: md5(files[name])}, tmp_path)
    assert leftovers(tmp_path) == []


def test_a_stale_file_under_the_real_name_is_replaced(served, tmp_path):
    server, files = served
    name = FILES[1]
    (tmp_path / name).write_bytes(b"half a file")
    (tmp_path / (name + ".part")).write_bytes(b"left from an interrupted run")
    download_files(server.url, {name: md5(files[name])}, tmp_path)
    assert (tmp_path / name).read_bytes() == files[name]
    assert leftovers(tmp_path) == [name]


def test_the_next_mirror_is_tried_and_every_failure_is_reported(served, tmp_path):
    server, files = served
    name = FILES[3]
    root = server.url.replace("/data/", "/elsewhere/")
    good = download_files([root, server.url], {name: md5(files[name])}, tmp_path)
    assert good[0].read_bytes() == files[name]
    assert server.requests == [f"/elsewhere/{name}", f"/data/{name}"]

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    server.files.pop(name)
    with pytest.raises(DownloadError) as err:
        download_files([closed, server.url], {name: "0" * 64}, tmp_path / "other")
    text = str(err.value)
    assert "cannot connect" in text and "HTTP 404" in text and name in text
    assert leftovers(tmp_path / "other") == []


def test_an_interrupted_download_leaves_no_partial_file(served, tmp_path):
    server, files = served

    class Cancelled(Exception):
        pass

    def cancel(done, total, what):
        if done > 0:
            raise Cancelled

    with pytest.raises(Cancelled):
        download_file(server.url + FILES[0], tmp_path / FILES[0], md5(files[FILES[0]]), progress=cancel)
    assert leftovers(tmp_path) == []


def test_sha256_checksums_are_accepted_and_bad_checksums_named(served, tmp_path):
    server, files = served
    name = FILES[1]
    download_file(server.url + name, tmp_path / name, hashlib.sha256(files[name]).hexdigest())
    with pytest.raises(DownloadError, match="32 \\(MD5\\) or 64 \\(SHA-256\\) hex digits, got 'abc'"):
        download_file(server.url + name, tmp_path / "x", "abc")


def test_a_builtin_set_downloads_into_the_cache_and_loads(served, tmp_path, monkeypatch):
    server, files = served
    source = Source("MNIST", {n: md5(files[n]) for n in FILES}, (server.url,))
    monkeypatch.setitem(download.SOURCES, "mnist", source)
    monkeypatch.setenv("NETBUILDER_DATA_DIR", str(tmp_path))
    assert download.locate("mnist") is None
    ds = load_dataset({"kind": "mnist", "download": True})
    assert (ds.x_train.shape, ds.x_test.shape) == ((30, 1, 6, 6), (10, 1, 6, 6))
    assert leftovers(tmp_path / "mnist") == sorted(FILES)
    server.requests.clear()
    assert fetch("mnist") == tmp_path / "mnist" and server.requests == []
