"""numpy export: the generated predict.py against the engine (within 1e-6) on random architectures and
every block setting, run as a script with nothing but numpy, and its checks of its input."""
from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

from netbuilder.core.export import ExportError, export, numpy_export
from netbuilder.core.export.numpy_export import export_numpy
from netbuilder.core.export.verify import engine_outputs, load_module
from netbuilder.core.network import Network
from netbuilder.core.weights import load_weights, save_weights
from tests.core.test_export_onnx import CASES, HYPOTHESIS, NORM, _conv, _pool, architectures, case, case_project, inputs


def _export(project, folder: Path):
    net = Network(project)
    report = export_numpy(net, folder)
    assert report.passed
    module = load_module(folder / "predict.py", "check")
    assert module.CLASS_TO_INDEX == {name: i for i, name in enumerate(module.CLASS_NAMES)}
    return net, module


def _compare(project, folder: Path):
    net, predict = _export(project, folder)
    x = inputs(project, 6)
    # predict.py computes in float64, the engine in float32: with inputs scaled by 1/std (std 0.05
    # makes them 20x larger) the engine's rounding reaches ~1e-6 (hypothesis found 1.4e-6).
    np.testing.assert_allclose(predict.predict(x), engine_outputs(net, x), rtol=1e-5, atol=1e-5)


@HYPOTHESIS
@given(architectures())
def test_random_architectures_match_the_engine(project):
    with tempfile.TemporaryDirectory() as folder:
        _compare(project, Path(folder))


@pytest.mark.parametrize("name", list(CASES))
def test_every_block_setting_matches_the_engine(name, tmp_path):
    _compare(case(name), tmp_path)


def test_the_files_are_the_engine_weights_and_a_numpy_only_script(tmp_path):
    project = case("normalisation")
    net, _ = _export(project, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predict.py", "weights.npz"]
    stored_project, state = load_weights(tmp_path / "weights.npz")  # the engine's own format
    assert stored_project.to_dict() == project.to_dict()
    assert all(np.array_equal(state[k], v) for k, v in net.parameters().items())
    tree = ast.parse((tmp_path / "predict.py").read_text())
    top_imports = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
                   for alias in node.names} | {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert top_imports <= {"sys", "pathlib", "numpy"}


def _run(folder: Path, *args: str, block_pillow: bool = False):
    """predict.py as a script in a fresh interpreter, optionally with Pillow made unimportable."""
    prelude = "import sys; sys.modules['PIL'] = None; " if block_pillow else ""
    code = prelude + ("import runpy, sys; sys.argv = ['predict.py'] + sys.argv[1:]; "
                      "runpy.run_path('predict.py', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=folder, capture_output=True, text=True)


def test_the_script_classifies_image_files_without_pillow(tmp_path):
    project = case_project([_conv(padding=1)], input_shape=(1, 6, 5), normalization={"mean": [0.4], "std": [0.3]})
    net = Network(project)
    export(net, tmp_path, "numpy", samples=inputs(project, 3))
    pixels = (np.random.default_rng(3).random((6, 5)) * 255).astype(np.uint8)
    np.save(tmp_path / "img.npy", pixels)
    (tmp_path / "img.pgm").write_bytes(b"P5\n# a comment\n5 6\n255\n" + pixels.tobytes())
    done = _run(tmp_path, "weights.npz", "img.npy", "img.pgm", block_pillow=True)
    assert done.returncode == 0, done.stderr
    probs = engine_outputs(net, (pixels / 255.0).astype(np.float32)[None, None])[0]
    best = str(int(np.argmax(probs)))  # no dataset given: the class names are the indices
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["img.npy", "img.pgm"]
    assert all(line.split()[1] == best for line in lines)
    assert f"{100 * probs.max():.1f}%" in lines[0]

    (tmp_path / "img.png").write_bytes(b"not really a png")
    png = _run(tmp_path, "img.png", block_pillow=True)
    assert png.returncode != 0 and "needs Pillow" in png.stderr and "Traceback" not in png.stderr


def test_the_script_reads_png_with_pillow_and_uses_the_weights_beside_it(tmp_path):
    from PIL import Image

    project = case_project([_pool("max")], input_shape=(3, 4, 4))
    net = Network(project)
    export(net, tmp_path, "numpy", samples=inputs(project, 2))
    rgb = (np.random.default_rng(0).random((4, 4, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "img.png")
    done = _run(tmp_path, "img.png")
    assert done.returncode == 0, done.stderr
    best = int(np.argmax(engine_outputs(net, (rgb / 255.0).astype(np.float32).transpose(2, 0, 1)[None])[0]))
    assert done.stdout.split()[1] == str(best)
    bad = _run(tmp_path, "weights.npz", "missing.png")
    assert bad.returncode == 1 and "missing.png: cannot read the image" in bad.stderr


def test_predict_api_checks_its_input_and_the_weights(tmp_path):
    project = case("conv valid")
    net, predict = _export(project, tmp_path)
    x = inputs(project, 1)
    np.testing.assert_allclose(predict.predict(x[0]), engine_outputs(net, x), atol=1e-6)  # one (C, H, W) image
    with pytest.raises(ValueError, match=r"expected images of shape \(2, 7, 6\) \(channels, height, width\), "
                                         r"got \(7, 6, 2\)"):
        predict.predict(x.transpose(0, 2, 3, 1))
    other = Network(case_project([_conv(filters=5)]))
    save_weights(tmp_path / "other.npz", other, other.project)
    with pytest.raises(ValueError, match=r"conv1.weight: the file has \(5, 2, 3, 3\), this network needs "
                                         r"\(3, 2, 3, 3\)"):
        predict.load_weights(tmp_path / "other.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "weights.npz").read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable netbuilder weights file"):
        predict.load_weights(tmp_path / "cut.npz")


def test_a_mismatch_writes_nothing(tmp_path, monkeypatch):
    real = numpy_export.compare
    monkeypatch.setattr(numpy_export, "compare",
                        lambda fmt, network, x, run, *a, **k: real(fmt, network, x, lambda v: run(v) + 1e-3, *a, **k))
    with pytest.raises(ExportError, match="numpy export of 'case' gives other answers") as info:
        export_numpy(Network(case("conv valid")), tmp_path / "out")
    assert info.value.report.max_abs_diff == pytest.approx(1e-3, rel=1e-3)
    assert list(tmp_path.iterdir()) == []


def test_normalisation_is_in_the_script(tmp_path):
    project = case_project([_conv(activation="identity")], normalization=NORM, loss="squared_error")
    net, predict = _export(project, tmp_path)
    x = inputs(project, 4)
    assert predict.NORMALIZATION == NORM
    net.set_normalization(None)  # the bare network differs: predict.py normalises raw pixels itself
    assert np.abs(predict.predict(x) - net.predict(x)).max() > 1e-2


def test_a_failed_second_rename_takes_the_first_new_file_back(tmp_path, monkeypatch):
    import os

    real = os.replace

    def flaky(src, dst):
        if Path(dst).name == "weights.npz":  # predict.py is already in place by then
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(ExportError, match="cannot write the numpy export to .*weights.npz: Input/output error"):
        export_numpy(Network(case("conv valid")), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
