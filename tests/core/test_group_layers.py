"""Residual and Branches against central differences (every child's parameters too) and PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
import torch  # the reference; CI installs torch==2.13.0, so its absence must fail, not skip

from netbuilder.core.layers.activation import Activation
from netbuilder.core.layers.batchnorm import BatchNorm
from netbuilder.core.layers.conv import Conv2D
from netbuilder.core.layers.dense import Dense
from netbuilder.core.layers.groups import Branches, Residual, walk
from tests.core.gradcheck import numeric_grad, rel_error

GRAD_TOL = 1e-6
F = torch.nn.functional


def conv(cin, filters, k, rng, dtype, stride=1, bias=True):
    """A k x k convolution, zero-padded by k // 2 ('same' at stride 1)."""
    p = k // 2
    return Conv2D(cin, filters, (k, k), (stride, stride), (p, p, p, p), rng, dtype=dtype, bias=bias)


def relu():
    return Activation("relu")


# Each case builds a group and names its input shape; biases and BatchNorm scales are random so they count.
CASES = {
    "residual_identity": lambda r, dt: (
        Residual([conv(3, 3, 3, r, dt), relu(), conv(3, 3, 3, r, dt)], activation=relu()), (2, 3, 5, 5)),
    "residual_projection": lambda r, dt: (
        Residual([conv(3, 4, 3, r, dt, stride=2), relu(), conv(4, 4, 3, r, dt)],
                 projection=conv(3, 4, 1, r, dt, stride=2), activation=relu()), (2, 3, 7, 7)),
    "residual_projection_no_activation": lambda r, dt: (
        Residual([conv(3, 4, 3, r, dt, stride=2), relu(), conv(4, 4, 3, r, dt)],
                 projection=conv(3, 4, 1, r, dt, stride=2)), (2, 3, 6, 5)),
    "residual_batchnorm": lambda r, dt: (
        Residual([conv(2, 3, 3, r, dt, bias=False), BatchNorm(3, dtype=dt), relu(),
                  conv(3, 2, 3, r, dt, bias=False), BatchNorm(2, dtype=dt)], activation=relu()), (3, 2, 4, 4)),
    "branches_concat": lambda r, dt: (
        Branches([[conv(3, 2, 1, r, dt)], [conv(3, 4, 3, r, dt), relu()], []], "concat"), (2, 3, 5, 4)),
    "branches_add": lambda r, dt: (
        Branches([[conv(3, 4, 3, r, dt)], [conv(3, 4, 1, r, dt), Activation("tanh")]], "add"), (2, 3, 4, 5)),
    "residual_in_branches": lambda r, dt: (
        Branches([[Residual([conv(3, 3, 3, r, dt), relu()], activation=relu())], [conv(3, 2, 1, r, dt)]],
                 "concat"), (2, 3, 4, 4)),
    "branches_in_residual": lambda r, dt: (
        Residual([Branches([[conv(3, 2, 1, r, dt)], [conv(3, 1, 3, r, dt), relu()]], "concat"), relu(),
                  conv(3, 3, 3, r, dt)], activation=relu()), (2, 3, 5, 5)),
    "residual_dense": lambda r, dt: (
        Residual([Dense(6, 8, r, dtype=dt), relu(), Dense(8, 6, r, dtype=dt)], activation=Activation("tanh")),
        (4, 6)),
    "residual_dense_projection": lambda r, dt: (
        Residual([Dense(6, 5, r, dtype=dt), relu(), Dense(5, 4, r, dtype=dt)], projection=Dense(6, 4, r, dtype=dt)),
        (4, 6)),
    "branches_dense_concat": lambda r, dt: (
        Branches([[Dense(5, 3, r, dtype=dt), Activation("sigmoid")], []], "concat"), (3, 5)),
}
NO_BATCH_STATS = [name for name in CASES if "batchnorm" not in name]


def build(name, dtype, seed=0):
    rng = np.random.default_rng(seed)
    group, shape = CASES[name](rng, dtype)
    for _, layer in walk(group):
        if "bias" in layer.params:
            layer.params["bias"][:] = rng.standard_normal(layer.params["bias"].shape) * 0.3
        if isinstance(layer, BatchNorm):
            layer.params["weight"][:] = rng.uniform(0.5, 2.0, layer.num_features)
    return group, rng.standard_normal(shape).astype(dtype), rng


def named(group, what: str = "params") -> dict[str, np.ndarray]:
    """The children's params, grads or buffers, as the network would name them ("inner.0.weight")."""
    return {f"{name}.{k}": v for name, layer in walk(group) for k, v in getattr(layer, what).items()}


def check_group(group, x, rng, eps=1e-6) -> dict[str, float]:
    """Relative errors of the input gradient and of every parameter gradient of every child, recursively.

    The scalar checked is sum(R * group(x)) for a fixed random R, as check_layer's.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    weights = rng.standard_normal(group.forward(x, training=True).shape)

    def f() -> float:
        return float(np.sum(group.forward(x, training=True) * weights))

    group.forward(x, training=True)
    dx = group.backward(weights)
    grads = {k: np.array(g) for k, g in named(group, "grads").items()}
    errors = {"input": rel_error(dx, numeric_grad(f, x, eps))}
    for name, p in named(group).items():
        errors[name] = rel_error(grads[name], numeric_grad(f, p, eps))
    return errors


# ---------------------------------------------------------------- central differences

@pytest.mark.parametrize("case", CASES)
def test_group_gradients(case):
    group, x, rng = build(case, np.float64)
    assert group.params == group.grads == group.buffers == {}
    errors = check_group(group, x, rng)
    assert set(errors) == {"input", *named(group)} and len(errors) > 2
    assert max(errors.values()) < GRAD_TOL, errors


def test_children_names_and_input_grads():
    rng = np.random.default_rng(1)
    first, proj = conv(3, 4, 3, rng, np.float64, stride=2), conv(3, 4, 1, rng, np.float64, stride=2)
    first.needs_input_grad = proj.needs_input_grad = False  # as a network's first layer would have it
    res = Residual([first, relu(), conv(4, 4, 3, rng, np.float64)], projection=proj, activation=relu())
    assert [n for n, _ in res.children()] == ["inner.0", "inner.1", "inner.2", "projection", "activation"]
    assert first.needs_input_grad and proj.needs_input_grad
    br = Branches([[conv(3, 2, 1, rng, np.float64)], [], [res, relu()]], "concat")
    assert [n for n, _ in br.children()] == ["path1.0", "path3.0", "path3.1"]
    assert [n for n, _ in walk(br)][:4] == ["path1.0", "path3.0", "path3.0.inner.0", "path3.0.inner.1"]
    assert "path3.0.projection.weight" in named(br)


def test_group_as_first_weighted_layer_skips_only_its_input_gradient():
    group, x, rng = build("branches_in_residual", np.float64)
    y = group.forward(x, training=True)
    g = rng.standard_normal(y.shape)
    group.backward(g)
    want = {k: np.array(v) for k, v in named(group, "grads").items()}
    group.needs_input_grad = False  # what Network.train_step sets on its first layer with weights
    group.forward(x, training=True)
    assert group.backward(g) is None
    got = named(group, "grads")
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)


# ---------------------------------------------------------------- inference

def kept(layer) -> list[str]:
    """The names of the state a training forward keeps for backward, where ``layer`` keeps any now."""
    return [a for a in ("_saved", "_x", "_y", "_mask") if getattr(layer, a, None) is not None]


@pytest.mark.parametrize("case", NO_BATCH_STATS)
def test_inference_keeps_nothing_and_equals_training(case):
    group, x, rng = build(case, np.float64)
    y = group.forward(x, training=False)
    assert kept(group) == [] and {n: kept(layer) for n, layer in walk(group) if kept(layer)} == {}
    with pytest.raises(RuntimeError, match="training=True"):
        group.backward(np.ones_like(y))
    np.testing.assert_allclose(group.forward(x, training=True), y, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    dx = group.backward(g)
    group.forward(x, training=True)
    group.forward(rng.standard_normal(x.shape), training=False)  # an inference forward disturbs nothing
    np.testing.assert_array_equal(group.backward(g), dx)


def test_batchnorm_inside_uses_running_statistics_in_inference():
    group, x, _ = build("residual_batchnorm", np.float64)
    before = {k: b.copy() for k, b in named(group, "buffers").items()}
    y = group.forward(x, training=False)
    after = named(group, "buffers")
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert not np.allclose(group.forward(x, training=True), y)  # batch statistics now, and they moved
    assert int(after["inner.1.num_batches_tracked"]) == 1


# ---------------------------------------------------------------- errors

def test_mismatched_add_names_paths_and_shapes():
    rng = np.random.default_rng(2)
    br = Branches([[conv(3, 4, 3, rng, np.float64)], [conv(3, 2, 1, rng, np.float64)]], "add")
    with pytest.raises(ValueError, match=r"'add'.*path1 \(2, 4, 5, 5\), path2 \(2, 2, 5, 5\)"):
        br.forward(np.zeros((2, 3, 5, 5)), training=True)
    assert br._saved is None
    cat = Branches([[conv(3, 4, 3, rng, np.float64, stride=2)], []], "concat")
    with pytest.raises(ValueError, match=r"'concat'.*path1 \(1, 4, 3, 3\), path2 \(1, 3, 5, 5\)"):
        cat.forward(np.zeros((1, 3, 5, 5)))


def test_residual_shape_mismatch_and_bad_arguments():
    rng = np.random.default_rng(3)
    res = Residual([conv(3, 4, 3, rng, np.float64, stride=2)])
    with pytest.raises(ValueError, match=r"inner path gives shape \(1, 4, 3, 3\).*skip path gives \(1, 3, 5, 5\)"):
        res.forward(np.zeros((1, 3, 5, 5)))
    c = conv(3, 3, 1, rng, np.float64)
    with pytest.raises(ValueError, match="used twice"):
        Branches([[c], [Residual([c])]], "add")
    with pytest.raises(ValueError, match="merge"):
        Branches([[c]], "mul")
    with pytest.raises(TypeError, match="layers"):
        Residual([c, "relu"])


# ---------------------------------------------------------------- PyTorch parity

def torch_forward(layer, x, p: dict, bufs: dict, name: str = ""):
    """What ``layer`` computes, in torch, with the parameters ``p`` and BatchNorm buffers ``bufs`` named by walk()."""
    if isinstance(layer, Residual):
        h = x
        for k, inner in enumerate(layer.inner):
            h = torch_forward(inner, h, p, bufs, f"{name}inner.{k}.")
        z = h + (torch_forward(layer.projection, x, p, bufs, f"{name}projection.") if layer.projection else x)
        return torch_forward(layer.activation, z, p, bufs, f"{name}activation.") if layer.activation else z
    if isinstance(layer, Branches):
        ys = []
        for k, path in enumerate(layer.paths, 1):
            y = x
            for j, inner in enumerate(path):
                y = torch_forward(inner, y, p, bufs, f"{name}path{k}.{j}.")
            ys.append(y)
        return torch.cat(ys, 1) if layer.merge == "concat" else sum(ys)
    if isinstance(layer, Conv2D):
        t, b, l, r = layer.pads
        return F.conv2d(F.pad(x, (l, r, t, b)), p[name + "weight"], p.get(name + "bias"), stride=layer.stride)
    if isinstance(layer, Dense):
        return F.linear(x, p[name + "weight"], p[name + "bias"])
    if isinstance(layer, BatchNorm):
        return F.batch_norm(x, bufs[name + "running_mean"], bufs[name + "running_var"], p[name + "weight"],
                            p[name + "bias"], training=True, momentum=layer.momentum, eps=layer.eps)
    return {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[layer.name](x)


@pytest.mark.parametrize("case", CASES)
def test_group_matches_torch(case):
    group, x, rng = build(case, np.float32, seed=5)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in named(group).items()}
    bufs = {k: torch.tensor(b) for k, b in named(group, "buffers").items() if not k.endswith("num_batches_tracked")}
    y = group.forward(x, training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = group.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch_forward(group, xt, p, bufs)
    yt.backward(torch.tensor(g))
    assert y.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    grads, live = named(group, "grads"), named(group, "buffers")
    assert grads.keys() == p.keys()
    for k, t in p.items():
        np.testing.assert_allclose(grads[k], t.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=k)
    for k, t in bufs.items():
        np.testing.assert_allclose(live[k], t.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)  # running statistics
