"""BatchNorm folded into the convolution or dense block before it, in the ONNX and numpy exports and
the engine's predict and evaluate: one layer instead of two, the same outputs, the weights file and
the engine's weights untouched, remade whenever those change, and left apart wherever folding
would change the network."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from netbuilder.core.export import export
from netbuilder.core.export.fold import fold_stages, folded_weights
from netbuilder.core.export.verify import load_module
from netbuilder.core.layers.batchnorm import BatchNorm
from netbuilder.core.network import Network
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.weights import load_weights


def conv(**kw):
    return {"kind": "conv", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "identity", **kw}


def bn(act="relu"):
    return {"kind": "batchnorm", "activation": act}


def project(blocks) -> Project:
    return Project(name="fold", input_shape=(2, 6, 6), num_classes=3,
                   blocks=list(blocks) + [{"kind": "dense", "units": 3, "activation": "softmax"}],
                   training=TrainingSettings(seed=7))


def trained_like(net: Network, seed: int = 0) -> Network:
    """Running statistics and affine parameters far from their initial 1s and 0s."""
    rng = np.random.default_rng(seed)
    for name, v in {**net.parameters(), **net.buffers()}.items():
        if name.endswith("running_mean"):
            v[:] = rng.standard_normal(v.shape)
        elif name.endswith("running_var"):
            v[:] = rng.random(v.shape) * 3 + 0.05
        elif ".weight" in name and v.ndim == 1 or name.endswith(".bias"):
            v[:] = rng.standard_normal(v.shape)
    return net


SAMPLES = np.random.default_rng(1).random((12, 2, 6, 6), dtype=np.float32)
BATCHNORM_FORWARD = BatchNorm.forward


def onnx_export(net, tmp_path):
    report = export(net, tmp_path / "m.onnx", "onnx", samples=SAMPLES)
    return report, onnx.load(str(tmp_path / "m.onnx"))


@pytest.mark.parametrize("act", ["relu", "identity", "tanh", "leaky_relu"])
@pytest.mark.parametrize("bias", [False, True])
def test_onnx_has_one_conv_with_merged_weights_and_the_batchnorms_activation(tmp_path, act, bias):
    net = trained_like(Network(project([conv(bias=bias), bn(act), {"kind": "pool", "mode": "max", "size": 2}])))
    before = net.state_dict()
    report, model = onnx_export(net, tmp_path)
    assert report.passed and report.max_abs_diff < 1e-5 and report.agreement == 1
    ops = [n.op_type for n in model.graph.node]
    assert "BatchNormalization" not in ops and ops.count("Conv") == 1
    conv_node = next(n for n in model.graph.node if n.op_type == "Conv")
    assert conv_node.name == "conv1+batchnorm1"
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert "batchnorm1.running_mean" not in inits and "conv1.weight" not in inits
    # W' = W γ/σ per filter, b' = (b − μ) γ/σ + β, from float64
    p = {k: v.astype(np.float64) for k, v in before.items()}
    s = p["batchnorm1.weight"] / np.sqrt(p["batchnorm1.running_var"] + 1e-5)
    np.testing.assert_allclose(inits["conv1+batchnorm1.weight"], p["conv1.weight"] * s[:, None, None, None],
                               rtol=1e-6)
    np.testing.assert_allclose(inits["conv1+batchnorm1.bias"],
                               (p.get("conv1.bias", 0) - p["batchnorm1.running_mean"]) * s + p["batchnorm1.bias"],
                               rtol=1e-6, atol=1e-7)
    assert ops[ops.index("Conv") + 1] == {"relu": "Relu", "identity": "Identity", "tanh": "Tanh",
                                          "leaky_relu": "LeakyRelu"}[act]
    after = net.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # the engine is left as it was


def test_dense_then_batchnorm_folds_into_one_gemm(tmp_path):
    net = trained_like(Network(project([{"kind": "flatten"}, {"kind": "dense", "units": 5, "activation": "identity"},
                                        bn("tanh")])))
    report, model = onnx_export(net, tmp_path)
    assert report.passed and report.max_abs_diff < 1e-5
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Gemm") == 2 and "BatchNormalization" not in ops


@pytest.mark.parametrize("blocks", [
    [conv(activation="relu"), bn()],  # the conv's own relu comes between: nothing to fold
    [conv(), {"kind": "pool", "mode": "max", "size": 2}, bn()],  # a batchnorm after pooling
    [bn(), conv()],  # a batchnorm first
])
def test_a_batchnorm_that_does_not_follow_a_linear_block_directly_stays(tmp_path, blocks):
    net = trained_like(Network(project(blocks)))
    report, model = onnx_export(net, tmp_path)
    assert report.passed
    assert [n.op_type for n in model.graph.node].count("BatchNormalization") == 1
    assert all(not hasattr(stage, "norm") for stage in fold_stages(net.stages))


def test_batchnorms_inside_a_residual_group_fold_too(tmp_path):
    inner = [conv(), bn(), conv(), bn("identity")]
    net = trained_like(Network(project([conv(), bn(), {"kind": "residual", "name": "res", "blocks": inner}])))
    report, model = onnx_export(net, tmp_path)
    assert report.passed and report.max_abs_diff < 1e-5
    names = [n.name for n in model.graph.node if n.op_type == "Conv"]
    assert names == ["conv1+batchnorm1", "res.conv1+batchnorm1", "res.conv2+batchnorm2"]
    numpy_report = export(net, tmp_path / "np", "numpy", samples=SAMPLES)
    assert numpy_report.passed and numpy_report.max_abs_diff < 1e-5


def test_numpy_export_folds_in_the_script_and_keeps_the_engines_weights_file(tmp_path):
    net = trained_like(Network(project([conv(bias=False), bn(), {"kind": "pool", "mode": "max", "size": 2}])))
    report = export(net, tmp_path / "np", "numpy", samples=SAMPLES)
    assert report.passed and report.max_abs_diff < 1e-5
    module = load_module(tmp_path / "np" / "predict.py", "predict")
    [entry] = [e for e in module.LAYERS if "fold" in e]
    assert entry["name"] == "conv1+batchnorm1" and entry["kind"] == "conv" and entry["activation"] == "relu"
    assert not any(e["kind"] == "batchnorm" for e in module.LAYERS)
    _, state = load_weights(tmp_path / "np" / "weights.npz")
    assert set(state) == set(net.state_dict())  # the file is the engine's: it loads back into the app
    weights = module.load_weights(tmp_path / "np" / "weights.npz")
    assert "conv1+batchnorm1.weight" not in weights  # what load_weights gives is the file's
    merged = module.fold_batchnorms(weights)
    np.testing.assert_allclose(merged["conv1+batchnorm1.weight"],
                               folded_weights(net.stages[0].param_layer, net.stages[1].param_layer)["weight"])
    # the merge is made from the weights predict gets, so new statistics are used, never stale ones
    weights["batchnorm1.running_var"] = weights["batchnorm1.running_var"] * 4
    net.buffers()["batchnorm1.running_var"][...] *= 4
    np.testing.assert_allclose(module.predict(SAMPLES, weights), net.predict(SAMPLES), atol=1e-5)
    # the folded batchnorm's arrays are still checked in the file
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in state.items() if k != "batchnorm1.running_mean"})
    with pytest.raises(ValueError, match=r"batchnorm1\.running_mean \(4,\) is missing"):
        module.load_weights(tmp_path / "partial.npz")


# --- the engine's own inference ------------------------------------------------------------------
def test_predict_and_evaluate_run_merged_layers_and_give_forwards_outputs(monkeypatch):
    inner = [conv(), bn(), conv(), bn("identity")]
    net = trained_like(Network(project([conv(), bn(), {"kind": "residual", "blocks": inner}, conv(), bn("tanh")])))
    x, labels = SAMPLES, np.arange(len(SAMPLES)) % 3
    want = net.forward(x)  # forward (as the probe) runs every block as it is
    calls = []
    monkeypatch.setattr(BatchNorm, "forward", lambda self, *a: calls.append(self) or BATCHNORM_FORWARD(self, *a))
    got = net.predict(x)
    loss, outputs = net.evaluate(x, labels)
    assert calls == []  # every batchnorm merged into its convolution, the ones inside the group too
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs, got)
    net.forward(x)
    assert len(calls) == 4


def test_the_merged_layers_follow_every_change_of_the_weights():
    net = trained_like(Network(project([conv(bias=True), bn(), {"kind": "flatten"},
                                        {"kind": "dense", "units": 5, "activation": "identity"}, bn("relu")])))
    x, labels = SAMPLES, np.arange(len(SAMPLES)) % 3
    net.predict(x)
    net.train_step(x, labels)  # moves the running statistics; then a step of plain SGD by hand
    for name, grad in net.gradients().items():
        net.parameters()[name][...] -= 0.5 * grad
    np.testing.assert_allclose(net.predict(x), net.forward(x), rtol=1e-5, atol=1e-6)
    state = trained_like(Network(net.project), seed=9).state_dict()
    net.load_state_dict(state)
    np.testing.assert_allclose(net.predict(x), net.forward(x), rtol=1e-5, atol=1e-6)
    net.buffers()["batchnorm2.running_var"][0] *= 50  # one value changed in place
    np.testing.assert_allclose(net.predict(x), net.forward(x), rtol=1e-5, atol=1e-6)
    before = net.state_dict()
    net.predict(x)
    assert all(np.array_equal(v, net.state_dict()[k]) for k, v in before.items())  # inference changes nothing
