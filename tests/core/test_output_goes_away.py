"""Output that goes away: temporary files a killed process left (a full disk under every writer is in
test_hostile_corpus)."""
from __future__ import annotations

import os

import numpy as np

from netbuilder.core import atomic
from netbuilder.core.atomic import clean_stale_temps, write_atomically
from netbuilder.core.export import export
from netbuilder.core.network import Network
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path


def test_stale_temporary_files_of_ours_are_cleaned_at_the_next_write(tmp_path):
    old = atomic._STARTED - 3600
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
    old = atomic._STARTED - 60  # before this process started, however long the suite has run
    os.utime(stale, (old, old))
    export(net, tmp_path / "net.onnx", "onnx")
    assert not stale.exists() and (tmp_path / "net.onnx").is_file()
