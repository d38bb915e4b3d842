"""Files that lie, made here at test time: pipes and devices given as projects, zip bombs and
headers that claim more than they hold. Each is one clear line, and nothing on disk changes."""
from __future__ import annotations

import gzip
import io
import json
import os
import zipfile

import numpy as np
import pytest

from netbuilder.core import cli, memory
from netbuilder.core.datasets import DatasetError, load_dataset
from netbuilder.core.datasets.idx import read_file_bytes
from netbuilder.core.errors import ProjectError
from netbuilder.core.network import Network
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.core.weights import WeightsError, load_weights, save_weights


@pytest.fixture
def small_machine(monkeypatch):
    """A machine of 2 MiB: files may unpack to 1 MiB."""
    monkeypatch.setenv("NETBUILDER_MEMORY_BYTES", str(2 << 20))
    memory.machine_memory.cache_clear()
    yield
    monkeypatch.undo()
    memory.machine_memory.cache_clear()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return err


def test_a_fifo_given_as_a_project_is_refused_without_waiting(tmp_path, capsys):
    fifo = tmp_path / "net.json"
    os.mkfifo(fifo)
    with pytest.raises(ProjectError, match="is a named pipe \\(FIFO\\), not a project file"):
        load_project(fifo)
    assert cli.main(["summary", str(fifo)]) == 1  # bad input: not a file to read
    assert "named pipe" in one_line_error(capsys)


def test_a_device_given_as_a_project_is_refused(capsys):
    with pytest.raises(ProjectError, match="is a device, not a project file"):
        load_project("/dev/zero")


def test_a_project_file_beyond_64_mb_is_refused_unread(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(65 << 20)  # sparse: no time or disk spent
    with pytest.raises(ProjectError, match="65.0 MiB is too large for a project file \\(at most 64.0 MiB\\)"):
        load_project(big)


def npz_with(path, entries: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name + ".npy", data)


def npy_header(shape, dtype="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_a_header_claiming_gigabytes_over_a_few_bytes_is_named_with_both_sizes(tmp_path):
    project = load_project(example_path("xor"))
    good = tmp_path / "w.npz"
    save_weights(good, Network(project), project)
    with np.load(good) as data:
        arrays = {k: data[k] for k in data.files}
    liar = tmp_path / "liar.npz"
    entries = {}
    for k, v in arrays.items():
        buf = io.BytesIO()
        np.save(buf, v)
        entries[k] = buf.getvalue()
    entries["dense1.weight"] = npy_header((1_000_000_000,)) + b"\0" * 80
    npz_with(liar, entries)
    with pytest.raises(WeightsError, match="entry 'dense1.weight' declares float32 \\(1000000000,\\) \\(3.7 GiB\\) "
                                           "but holds 80 bytes"):
        load_weights(liar)


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path, small_machine):
    bomb = tmp_path / "data.npz"
    x = np.zeros((2 << 20,), np.uint8)  # 2 MiB of zeros: a few kilobytes compressed
    buf = io.BytesIO()
    np.save(buf, x)
    npz_with(bomb, {"x": buf.getvalue(), "y": b""})
    assert bomb.stat().st_size < 50_000
    with pytest.raises(DatasetError, match="entry 'x' unpacks to 2.0 MiB, more than the 1.0 MiB allowed"):
        load_dataset({"kind": "npz", "path": str(bomb)})


def test_a_gzip_bomb_is_streamed_with_a_limit(tmp_path, small_machine):
    gz = tmp_path / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(b"\0" * (3 << 20)))
    with pytest.raises(DatasetError, match="gzip data unpacks to more than 1.0 MiB .* refused"):
        read_file_bytes(gz)


def test_a_fifo_named_like_an_image_is_ignored_not_read(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((4, 4), 60 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    os.mkfifo(tmp_path / "a" / "trap.png")
    ds = load_dataset({"kind": "folder", "path": str(tmp_path), "input_shape": [1, 4, 4]})
    assert len(ds.x_train) == 4


def test_nothing_on_disk_changes_when_a_lying_weights_file_is_exported(tmp_path, capsys):
    project_file = tmp_path / "xor.json"
    project_file.write_text(example_path("xor").read_text())
    liar = tmp_path / "w.npz"
    npz_with(liar, {"__project__": npy_header((10**12,), "|u1") + b"{}"})
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert cli.main(["export", str(project_file), str(liar), "--format", "onnx", "-o", str(tmp_path / "n.onnx")]) == 1
    assert "declares uint8" in one_line_error(capsys)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert json.loads(project_file.read_text())["name"] == "XOR"
