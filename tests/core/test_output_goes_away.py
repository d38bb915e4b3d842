"""Output that goes away: a full disk during an export, and temporary files a killed process left."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from netbuilder.core.atomic import clean_stale_temps, write_atomically
from netbuilder.core.export import ExportError, export
from netbuilder.core.network import Network
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path


def test_a_full_disk_during_a_pytorch_export_is_one_line_and_the_old_export_stays(tmp_path, monkeypatch):
    import torch

    net = Network(load_project(example_path("xor")))
    out = tmp_path / "net_torch"
    export(net, out, "torch")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\n"
                           "PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    for p in net.parameters().values():
        p += 1.0  # a different network: a published export would differ
    with pytest.raises(ExportError, match="cannot write the PyTorch export to .*: PytorchStreamWriter failed "
                                          "writing file data/0: file write failed"):
        export(net, out, "torch")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary file left either


def test_stale_temporary_files_of_ours_are_cleaned_at_the_next_write(tmp_path):
    old = time.time() - 3600
    ours = tmp_path / ".w.npz.0123abcd.tmp"
    young = tmp_path / ".w.npz.89abcdef.tmp"  # another process writing right now
    theirs = tmp_path / ".notes.tmp"  # not our naming
    for p in (ours, young, theirs):
        p.write_bytes(b"x" * 100)
    os.utime(ours, (old, old))
    os.utime(theirs, (old, old))
    write_atomically(tmp_path / "w.npz", lambda fh: fh.write(b"new"))
    assert not ours.exists() and young.exists() and theirs.exists()
    assert (tmp_path / "w.npz").read_bytes() == b"new"
    assert clean_stale_temps(tmp_path / "missing") == []


def test_a_stale_temp_beside_an_export_is_cleaned_too(tmp_path):
    net = Network(load_project(example_path("xor")))
    stale = tmp_path / ".net.onnx.deadbeef.tmp"
    stale.write_bytes(np.zeros(10).tobytes())
    old = time.time() - 60
    os.utime(stale, (old, old))
    export(net, tmp_path / "net.onnx", "onnx")
    assert not stale.exists() and (tmp_path / "net.onnx").is_file()
