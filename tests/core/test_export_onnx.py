"""ONNX export: onnx's full checker, onnxruntime against the engine on random architectures and on
every block setting, the graph's interface and metadata, and failures that leave nothing behind.

The architecture strategy and the block cases here are shared with the PyTorch and numpy export tests.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from netbuilder.core.datasets.base import Dataset
from netbuilder.core.datasets.normalize import apply_normalization
from netbuilder.core.export import ExportError, export, onnx_export
from netbuilder.core.export.onnx_export import export_onnx, run_onnx
from netbuilder.core.export.verify import engine_outputs
from netbuilder.core.inference import infer, validate
from netbuilder.core.network import Network
from netbuilder.core.project import Project, TrainingSettings, parse_project

HYPOTHESIS = settings(max_examples=25, deadline=None,
                      suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])

# --- shared: random architectures and one project per block setting -------------------------------
pairs = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)).map(list))
paddings = st.one_of(st.sampled_from(["valid", "same"]), st.integers(0, 1),
                     st.tuples(st.integers(0, 1), st.integers(0, 1)).map(list))
activations = st.sampled_from(["relu", "leaky_relu", "sigmoid", "tanh", "identity"])


@st.composite
def spatial_block(draw):
    kind = draw(st.sampled_from(["conv", "conv", "pool", "pool", "activation", "dropout"]))
    if kind == "conv":
        return {"kind": "conv", "filters": draw(st.integers(1, 4)), "kernel_size": draw(pairs),
                "stride": draw(pairs), "padding": draw(paddings), "activation": draw(activations)}
    if kind == "pool":
        kh, kw = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
        padding = draw(st.one_of(st.just("same"), st.just("valid"),
                                 st.tuples(st.integers(0, kh // 2), st.integers(0, kw // 2)).map(list)))
        return {"kind": "pool", "mode": draw(st.sampled_from(["max", "average", "sum"])), "size": [kh, kw],
                "stride": draw(st.one_of(st.none(), pairs)), "padding": padding}
    if kind == "dropout":
        return {"kind": "dropout", "rate": draw(st.sampled_from([0.1, 0.5]))}
    return {"kind": "activation", "activation": draw(activations)}


@st.composite
def architectures(draw):
    """A random valid project: image blocks, [flatten], dense blocks, an output fitting the loss,
    input normalisation statistics half of the time."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(3, 9)), draw(st.integers(3, 9))
    blocks = draw(st.lists(spatial_block(), max_size=4))
    if draw(st.booleans()):
        blocks.append({"kind": "flatten"})
    for _ in range(draw(st.integers(0, 2))):
        blocks.append({"kind": "dense", "units": draw(st.integers(1, 6)), "activation": draw(activations)})
        if draw(st.booleans()):
            blocks.append({"kind": "dropout", "rate": 0.25})
    loss = draw(st.sampled_from(["cross_entropy", "squared_error", "binary_cross_entropy"]))
    classes = draw(st.integers(2, 5))
    last = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss) or draw(activations)
    blocks.append({"kind": "dense", "units": classes, "activation": last})
    dataset = {"kind": "shapes"}
    if draw(st.booleans()):
        dataset["normalization"] = {"mean": [draw(st.floats(0, 1)) for _ in range(c)],
                                    "std": [draw(st.floats(0.05, 1)) for _ in range(c)]}
    project = Project(name="random", input_shape=(c, h, w), num_classes=classes, blocks=blocks,
                      training=TrainingSettings(loss=loss, seed=draw(st.integers(0, 2**16))), dataset=dataset)
    assume(infer(project).ok)
    return project


def case_project(blocks, input_shape=(2, 7, 6), classes=3, normalization=None, loss="cross_entropy"):
    """``blocks`` then flatten and a dense output fitting ``loss``."""
    last = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss, "identity")
    tail = [{"kind": "flatten"}, {"kind": "dense", "units": classes, "activation": last}]
    dataset = {"kind": "shapes"}
    if normalization is not None:
        dataset["normalization"] = normalization
    project = Project(name="case", input_shape=input_shape, num_classes=classes, blocks=list(blocks) + tail,
                      training=TrainingSettings(loss=loss, seed=1), dataset=dataset)
    assert infer(project).ok, infer(project).errors
    return project


def _conv(**kw):
    return {"kind": "conv", "filters": 3, "kernel_size": 3, "activation": "relu", **kw}


def _pool(mode, **kw):
    return {"kind": "pool", "mode": mode, **kw}


NORM = {"mean": [0.25, 0.5], "std": [0.2, 0.3]}
CASES = {
    "conv valid": [_conv()],
    "conv same odd kernel": [_conv(padding="same")],
    "conv same asymmetric (stride 2)": [_conv(padding="same", stride=2)],
    "conv same even kernel": [_conv(kernel_size=2, padding="same")],
    "conv pixel padding": [_conv(padding=1)],
    "conv pair padding and kernel": [_conv(kernel_size=[3, 2], padding=[1, 0])],
    "conv pair stride": [_conv(stride=[2, 1])],
    **{f"conv {act}": [_conv(activation=act)] for act in ("leaky_relu", "sigmoid", "tanh", "identity")},
    **{f"pool {mode}": [_pool(mode)] for mode in ("max", "average", "sum")},
    **{f"pool {mode} padded": [_pool(mode, size=3, stride=2, padding=1)] for mode in ("max", "average", "sum")},
    **{f"pool {mode} same asymmetric": [_pool(mode, size=2, stride=1, padding="same")]
       for mode in ("max", "average", "sum")},
    "pool pair window and stride": [_pool("max", size=[2, 3], stride=[1, 2])],
    **{f"activation {act}": [{"kind": "activation", "activation": act}]
       for act in ("relu", "leaky_relu", "sigmoid", "tanh", "identity")},
    "dropout": [{"kind": "dropout", "rate": 0.5}],
    "dense on an image (implicit flatten)": [{"kind": "dense", "units": 4, "activation": "tanh"}],
    "named blocks": [_conv(name="features"), _pool("max", name="shrink")],
    "normalisation": [_conv(padding="same")],
}
CASE_OPTIONS = {"normalisation": {"normalization": NORM}}


def case(name: str) -> Project:
    return case_project(CASES[name], **CASE_OPTIONS.get(name, {}))


def inputs(project, n=5, seed=0):
    return np.random.default_rng(seed).random((n, *project.input_shape), dtype=np.float32)


# --- ONNX --------------------------------------------------------------------------------------
def _export_and_compare(project, folder: Path):
    net = Network(project)
    path = folder / "model.onnx"
    report = export_onnx(net, path)
    assert report.passed and report.status == "verified"
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    for n in (1, 7):  # the batch dimension is dynamic
        x = inputs(project, n, seed=n)
        np.testing.assert_allclose(run_onnx(path, x), engine_outputs(net, x), rtol=1e-5, atol=1e-5)


@HYPOTHESIS
@given(architectures())
def test_random_architectures_pass_the_checker_and_match_onnxruntime(project):
    with tempfile.TemporaryDirectory() as folder:
        _export_and_compare(project, Path(folder))


@pytest.mark.parametrize("name", list(CASES))
def test_every_block_setting_matches_onnxruntime(name, tmp_path):
    _export_and_compare(case(name), tmp_path)


def test_binary_output_and_squared_error_outputs(tmp_path):
    _export_and_compare(case_project([_conv()], classes=1, loss="binary_cross_entropy"), tmp_path)
    _export_and_compare(case_project([_pool("sum", size=3)], loss="squared_error"), tmp_path)


def test_graph_interface_operators_and_metadata(tmp_path):
    project = case_project([_conv(padding="same", stride=2), _pool("sum", size=2), _pool("average", size=1),
                            {"kind": "dropout", "rate": 0.5},
                            {"kind": "activation", "activation": "leaky_relu"}], normalization=NORM)
    net = Network(project)
    data = Dataset("tiny", np.zeros((4, 2, 7, 6), np.float32), np.arange(4) % 3, ["cat", "dog", "emu"])
    path = tmp_path / "m.onnx"
    export(net, path, "onnx", dataset=data)
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "probabilities"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["N", 2, 7, 6]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 3]
    ops = [n.op_type for n in model.graph.node]
    assert ops[:2] == ["Sub", "Mul"]  # normalisation first: minus mean, times 1 / std
    assert ops[2:] == ["Conv", "Relu", "AveragePool", "Mul", "AveragePool", "LeakyRelu", "Flatten", "Gemm",
                       "Softmax"]  # no Dropout
    nodes = {n.name: n for n in model.graph.node}
    attrs = lambda node: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}  # noqa: E731
    # 'same' at stride 2 on 7x6: 1 row above and below, the width's odd pixel on the right only;
    # ONNX orders pads (top, left, bottom, right)
    assert attrs(nodes["conv1"])["pads"] == [1, 0, 1, 1]
    assert attrs(nodes["pool1"])["count_include_pad"] == 1 and attrs(nodes["pool2"])["count_include_pad"] == 1
    assert attrs(nodes["activation1"])["alpha"] == pytest.approx(0.01)
    assert attrs(nodes["dense1"])["transB"] == 1
    inits = {i.name for i in model.graph.initializer}
    assert set(net.parameters()) <= inits
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["netbuilder.class_names"]) == ["cat", "dog", "emu"]
    assert json.loads(meta["netbuilder.class_to_index"]) == {"cat": 0, "dog": 1, "emu": 2}
    assert parse_project(meta["netbuilder.project"]).to_dict() == project.to_dict()
    assert json.loads(meta["netbuilder.normalization"]) == NORM


def test_every_intermediate_tensor_carries_its_shape(tmp_path):
    """Shape inference has run: viewers such as Netron show each tensor's shape."""
    project = case_project([_conv(padding="same", stride=2), _pool("max", size=2), {"kind": "flatten"}],
                           normalization=NORM)
    net = Network(project)
    path = tmp_path / "m.onnx"
    export(net, path, "onnx")
    graph = onnx.load(str(path)).graph
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    inits = {i.name for i in graph.initializer}
    produced = [o for n in graph.node for o in n.output if o != "probabilities" and o not in inits]
    assert produced and set(produced) <= set(shapes)
    conv_out = next(n.output[0] for n in graph.node if n.op_type == "Conv")
    assert shapes[conv_out] == ["N", *validate(project).blocks[0].output_shape]


def test_normalisation_is_inside_the_graph(tmp_path):
    """Raw pixels in: the graph equals normalising, then running the network on normalised pixels."""
    project = case_project([_conv(padding=1, activation="tanh")], normalization=NORM, loss="squared_error")
    net = Network(project)
    path = tmp_path / "m.onnx"
    export_onnx(net, path)
    x = inputs(project, 6)
    got = run_onnx(path, x)
    np.testing.assert_allclose(got, net.predict(x), atol=1e-5)
    net.set_normalization(None)  # the bare network: normalised pixels must be given to it
    np.testing.assert_allclose(got, net.predict(apply_normalization(x, NORM)), atol=1e-5)
    assert np.abs(got - net.predict(x)).max() > 1e-2


def test_report_figures_use_validation_samples_of_the_dataset(tmp_path):
    project = case("conv valid")
    data = Dataset("blobs", np.random.default_rng(0).random((50, 2, 7, 6), dtype=np.float32),
                   np.arange(50) % 3, ["a", "b", "c"])
    report = export(Network(project), tmp_path / "m.onnx", "onnx", dataset=data, count=4)
    assert report.samples == 4 and report.sample_source == "validation samples of blobs"
    assert report.agreement == 1.0 and 0 <= report.max_abs_diff <= 1e-5
    text = str(report)
    assert text.startswith("ONNX export verified with onnxruntime ")
    assert "largest difference" in text and "same predicted class for 4/4 samples (100.0%)" in text
    assert str(tmp_path / "m.onnx") in text


def test_without_onnxruntime_it_says_so_plainly(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    report = export_onnx(Network(case("conv valid")), tmp_path / "m.onnx")
    assert not report.checked and report.status == "not checked" and report.max_abs_diff is None
    assert "NOT verified: onnxruntime is not installed" in str(report)
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)  # still written and valid


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_mismatch_writes_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    real = onnx_export.run_onnx
    monkeypatch.setattr(onnx_export, "run_onnx", lambda p, x: real(p, x) + 0.5)
    with pytest.raises(ExportError, match="gives other answers than the app; nothing was written") as info:
        export_onnx(Network(case("conv valid")), path)
    assert info.value.report.status == "mismatch" and info.value.report.max_abs_diff == pytest.approx(0.5)
    assert "FAILED verification" in str(info.value)
    assert path.read_bytes() == b"old" and _leftovers(tmp_path) == ["m.onnx"]


@pytest.mark.parametrize("where,message", [
    ("missing/m.onnx", "does not exist"),
    ("afile/m.onnx", "does not exist"),
    ("adir", "it is a folder"),
])
def test_unwritable_paths_are_refused_before_any_work(tmp_path, where, message):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    with pytest.raises(ExportError, match=message):
        export_onnx(Network(case("conv valid")), tmp_path / where)
    assert _leftovers(tmp_path) == ["adir", "afile"]


def test_a_failing_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    import netbuilder.core.export.verify as verify

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(verify.os, "replace", fail)
    with pytest.raises(ExportError, match="No space left on device"):
        export_onnx(Network(case("conv valid")), tmp_path / "m.onnx")
    assert _leftovers(tmp_path) == []


def test_unknown_format_and_bad_samples(tmp_path):
    net = Network(case("conv valid"))
    with pytest.raises(ExportError, match="unknown export format 'tflite'; choose one of onnx, torch, numpy"):
        export(net, tmp_path / "m", "tflite")
    with pytest.raises(ExportError, match=r"must be \(N, 2, 7, 6\) images, got shape \(3, 7, 6\)"):
        export(net, tmp_path / "m.onnx", "onnx", samples=np.zeros((3, 7, 6)))
    assert _leftovers(tmp_path) == []
