"""PyTorch export: the generated nn.Module with its state_dict against the engine (torch==2.13.0) on
random architectures and every block setting; its names, readability and failure handling."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given

from netbuilder.core.export import ExportError, export, torch_export
from netbuilder.core.export.torch_export import export_torch, load_net, module_source
from netbuilder.core.export.verify import engine_outputs, load_module
from netbuilder.core.network import Network
from tests.core.test_export_onnx import CASES, HYPOTHESIS, NORM, _conv, _pool, architectures, case, case_project, inputs

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


def _export_and_compare(project, folder: Path):
    net = Network(project)
    report = export_torch(net, folder / "out")
    assert report.passed and report.runtime.startswith("torch ")
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["model.py", "weights.pt"]
    model = load_module(folder / "out" / "model.py", "check").Net()
    state = torch.load(str(folder / "out" / "weights.pt"), weights_only=True)
    assert set(state) == set(net.parameters())  # "<block>.weight" / "<block>.bias", nothing else
    model.load_state_dict(state)
    model.eval()
    x = inputs(project, 6)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, engine_outputs(net, x), rtol=1e-5, atol=1e-5)
    return model


@HYPOTHESIS
@given(architectures())
def test_random_architectures_match_torch(project):
    with tempfile.TemporaryDirectory() as folder:
        _export_and_compare(project, Path(folder))


@pytest.mark.parametrize("name", list(CASES))
def test_every_block_setting_matches_torch(name, tmp_path):
    _export_and_compare(case(name), tmp_path)


def test_layers_are_named_and_ordered_as_the_blocks(tmp_path):
    project = case_project([_conv(name="features", padding="same", stride=2), _pool("sum", size=2),
                            {"kind": "dropout", "rate": 0.3}, {"kind": "activation", "activation": "tanh"}],
                           normalization=NORM)
    model = _export_and_compare(project, tmp_path)
    names = [b.name for b in Network(project).inference.blocks]
    assert names == ["features", "pool1", "dropout1", "activation1", "flatten1", "dense1"]
    assert list(model._modules) == names
    assert isinstance(model.features, torch.nn.Conv2d) and isinstance(model.dropout1, torch.nn.Dropout)
    assert model.pool1.divisor_override == 1  # sum pooling


def test_generated_source_is_plain_readable_python(tmp_path):
    project = case_project([_conv(padding="same", stride=2), _pool("max", size=3, stride=2, padding=1)],
                           normalization=NORM)
    source = module_source(Network(project), ["cat", "dog", "emu"])
    compile(source, "model.py", "exec")
    assert "class Net(nn.Module):" in source and "    def forward(self, x):" in source
    assert "self.conv1 = nn.Conv2d(2, 3, kernel_size=(3, 3), stride=(2, 2))" in source
    assert "x = F.pad(x, (0, 1, 1, 1))  # left, right, top, bottom" in source  # 'same': odd pixel on the right
    assert "self.pool1 = nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))" in source
    assert "x = (x - self.input_mean) * self.input_scale" in source
    assert "CLASS_NAMES = ['cat', 'dog', 'emu']" in source
    scope = {}
    exec("\n".join(line for line in source.splitlines() if line.startswith(("CLASS_NAMES =", "CLASS_TO_INDEX ="))),
         scope)
    assert scope["CLASS_TO_INDEX"] == {"cat": 0, "dog": 1, "emu": 2}
    assert 'torch.load("weights.pt", weights_only=True)' in source


def test_a_python_keyword_block_name_still_works(tmp_path):
    model = _export_and_compare(case_project([{"kind": "activation", "activation": "relu", "name": "lambda"}]),
                                tmp_path)
    assert "lambda" in model._modules


def test_a_name_nn_module_owns_is_refused_naming_the_block(tmp_path):
    project = case_project([_conv(name="forward")])
    with pytest.raises(ExportError, match=r"block 1 \(conv\): the name 'forward' is taken by PyTorch"):
        export_torch(Network(project), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_torch_and_onnx_are_imported_only_when_an_export_runs():
    code = ("import sys, netbuilder.core.export, netbuilder.core.export.torch_export, "
            "netbuilder.core.export.onnx_export, netbuilder.core.export.numpy_export, netbuilder.core.checkpoint, "
            "netbuilder.core.cli; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_existing_folder_keeps_its_other_files_and_gets_replaced_files(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "model.py").write_text("old")
    export(Network(case("conv valid")), folder, "torch")
    assert sorted(p.name for p in folder.iterdir()) == ["model.py", "notes.txt", "weights.pt"]
    assert (folder / "notes.txt").read_text() == "mine" and "class Net" in (folder / "model.py").read_text()
    net = load_net(folder / "model.py", folder / "weights.pt")
    assert isinstance(net, torch.nn.Module)


def test_a_mismatch_writes_nothing_and_removes_the_new_folder(tmp_path, monkeypatch):
    real = torch_export.compare

    def skewed(fmt, network, x, run, *args, **kwargs):
        return real(fmt, network, x, lambda v: run(v) * 1.5 + 1, *args, **kwargs)

    monkeypatch.setattr(torch_export, "compare", skewed)
    with pytest.raises(ExportError, match="PyTorch export of 'case' gives other answers") as info:
        export_torch(Network(case("conv valid")), tmp_path / "out")
    assert info.value.report.status == "mismatch"
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destinations(tmp_path):
    (tmp_path / "afile").write_text("x")
    net = Network(case("conv valid"))
    with pytest.raises(ExportError, match="it is a file, and this export is a folder of 2 files"):
        export_torch(net, tmp_path / "afile")
    with pytest.raises(ExportError, match="does not exist"):
        export_torch(net, tmp_path / "missing" / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
