"""The engine against PyTorch (torch==2.13.0) on randomly generated valid architectures:
forward outputs, gradients of input and parameters, and several optimiser steps."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from netbuilder.core.inference import infer
from netbuilder.core.network import Network
from netbuilder.core.optimizers import make_optimizer
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.torch_bridge import torch_model

torch.set_num_threads(1)

pairs = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)).map(list))
paddings = st.one_of(st.sampled_from(["valid", "same"]), st.integers(0, 1),
                     st.tuples(st.integers(0, 1), st.integers(0, 1)).map(list))
activations = st.sampled_from(["relu", "leaky_relu", "sigmoid", "tanh", "identity"])


def batchnorm(draw) -> dict:
    return {"kind": "batchnorm", "momentum": draw(st.sampled_from([0.1, 0.5])), "eps": 1e-5,
            "activation": draw(activations)}


@st.composite
def spatial_block(draw):
    kind = draw(st.sampled_from(["conv", "conv", "pool", "activation", "batchnorm"]))
    if kind == "batchnorm":
        return batchnorm(draw)
    if kind == "conv":
        return {"kind": "conv", "filters": draw(st.integers(1, 4)), "kernel_size": draw(pairs),
                "stride": draw(pairs), "padding": draw(paddings), "activation": draw(activations)}
    if kind == "pool":
        size = draw(st.integers(1, 3))
        return {"kind": "pool", "mode": draw(st.sampled_from(["max", "average", "sum"])), "size": size,
                "stride": draw(st.one_of(st.none(), st.integers(1, 3))),
                "padding": draw(st.integers(0, size // 2))}
    return {"kind": "activation", "activation": draw(activations)}


@st.composite
def group_block(draw):
    """A residual group or branches around a few spatial blocks (nesting one level more at times)."""
    inner = draw(st.lists(spatial_block(), min_size=1, max_size=2))
    if draw(st.booleans()):
        return {"kind": "residual", "blocks": inner, "projection": draw(st.sampled_from(["auto", "conv1x1"])),
                "activation": draw(activations)}
    other = draw(st.lists(spatial_block(), min_size=0, max_size=2))
    if draw(st.integers(0, 3)) == 0:
        other = [{"kind": "residual", "blocks": other or [{"kind": "activation", "activation": "tanh"}],
                  "projection": "auto", "activation": "identity"}]
    return {"kind": "branches", "paths": [inner, other], "merge": draw(st.sampled_from(["concat", "add"]))}


@st.composite
def architectures(draw):
    """A random project whose inference is valid, with a loss that fits its last activation."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(4, 10)), draw(st.integers(4, 10))
    blocks = draw(st.lists(st.one_of(spatial_block(), group_block()), min_size=0, max_size=4))
    if draw(st.integers(0, 3)) == 0:
        blocks.append({"kind": "global_pool", "mode": draw(st.sampled_from(["average", "max"]))})
    blocks.append({"kind": "flatten"})
    for _ in range(draw(st.integers(0, 2))):
        units = draw(st.integers(1, 6))
        blocks.append({"kind": "dense", "units": units, "activation": draw(activations)})
        if units > 1 and draw(st.booleans()):  # batch statistics of a single feature say little
            blocks.append(batchnorm(draw))
    loss = draw(st.sampled_from(["cross_entropy", "squared_error", "binary_cross_entropy"]))
    classes = draw(st.integers(2, 5))
    last = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}.get(loss) or draw(activations)
    blocks.append({"kind": "dense", "units": classes, "activation": last})
    project = Project(name="random", input_shape=(c, h, w), num_classes=classes, blocks=blocks,
                      training=TrainingSettings(loss=loss, seed=draw(st.integers(0, 2**16))))
    assume(infer(project).ok)
    return project


def _well_conditioned(net, x) -> bool:
    """Whether every batchnorm block's input varies over the batch: one that barely does (a global
    average of sigmoids) divides float32 rounding by a tiny std, and the frameworks' roundings then
    differ by more than any tolerance says about the arithmetic."""
    outputs = [out for _, out in net.forward_blocks(x)]
    for i, stage in enumerate(net.stages):
        if stage.info.kind == "batchnorm":
            inp = outputs[i - 1] if i else x
            axes = (0, 2, 3) if inp.ndim == 4 else (0,)
            if inp.var(axis=axes).min() < 1e-3:
                return False
    return True


def _kinds(blocks) -> set[str]:
    """Every block kind in ``blocks``, inside groups too."""
    found = set()
    for block in blocks:
        found.add(block["kind"])
        for inner in [block.get("blocks") or [], *(block.get("paths") or [])]:
            found |= _kinds(inner)
    return found


def _neighbours(blocks):
    """Every (block, the block after it) pair, inside groups too."""
    yield from zip(blocks, blocks[1:])
    for block in blocks:
        for inner in [block.get("blocks") or [], *(block.get("paths") or [])]:
            yield from _neighbours(inner)


def _torch_loss(loss: str, out, labels, classes: int):
    n = out.shape[0]
    if loss == "cross_entropy":
        return F.cross_entropy(out, labels)
    target = F.one_hot(labels, classes).float()
    if loss == "binary_cross_entropy":
        return F.binary_cross_entropy_with_logits(out, target, reduction="sum") / n
    return 0.5 * ((out - target) ** 2).sum() / n


def _data(project, n=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *project.input_shape), dtype=np.float32)  # pixels in [0, 1), as the app feeds
    y = rng.integers(0, project.num_classes, n)
    return x, y


def _close(a, b, rtol=2e-4, atol=2e-5):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(architectures())
def test_forward_and_gradients_match_torch(project):
    net = Network(project)
    x, y = _data(project)
    assume(_well_conditioned(net, x))
    fused = project.training.loss != "squared_error"
    model = torch_model(net, final_activation=not fused).train()  # batch statistics, as a training step
    with torch.no_grad():
        expected = torch_model(net)(torch.from_numpy(x)).numpy()  # eval: running statistics
    _close(net.forward(x), expected)

    loss, _ = net.train_step(x, y, input_grad=True)
    xt = torch.from_numpy(x).requires_grad_(True)
    tloss = _torch_loss(project.training.loss, model(xt), torch.from_numpy(y), project.num_classes)
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-4, abs=1e-6)
    # BatchNorm's backward subtracts sums of nearly equal size, scaled by 1/std: float32 rounding
    # there (each framework sums in its own order) grows on inputs of small variance.
    tol = dict(rtol=2e-3, atol=1e-4) if _kinds(project.blocks) & {"batchnorm"} else {}
    _close(net.input_grad, xt.grad.numpy(), **tol)
    tparams = dict(model.named_parameters())
    for name, grad in net.gradients().items():
        _close(grad, tparams[name].grad.numpy(), **tol)
    tbuffers = dict(model.named_buffers())  # BatchNorm's running statistics, moved by that one step
    for name, buf in net.buffers().items():
        _close(buf, tbuffers[name].numpy(), **tol)


OPTIMIZERS = [
    # Rates small enough that no random architecture diverges in four steps (sum pooling and
    # identity outputs can amplify a lot); divergence itself is the trainer tests' subject.
    ("sgd", dict(learning_rate=0.01, weight_decay=0.0)),
    ("momentum", dict(learning_rate=0.01, momentum=0.9, weight_decay=1e-3)),
    ("nesterov", dict(learning_rate=0.01, momentum=0.8, weight_decay=1e-2)),
    ("adam", dict(learning_rate=0.01, weight_decay=0.0)),
    ("adam", dict(learning_rate=0.01, weight_decay=1e-2)),
]


def _torch_optimizer(name, params, s):
    if name == "adam":
        return torch.optim.Adam(params, lr=s["learning_rate"], weight_decay=s["weight_decay"])
    return torch.optim.SGD(params, lr=s["learning_rate"], momentum=s.get("momentum", 0.0) if name != "sgd" else 0.0,
                           nesterov=name == "nesterov", weight_decay=s["weight_decay"])


@pytest.mark.parametrize("name,overrides", OPTIMIZERS)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(project=architectures())
def test_optimizer_steps_match_torch(name, overrides, project):
    project.training = dataclasses.replace(project.training, optimizer=name, **overrides)
    net = Network(project)
    fused = project.training.loss != "squared_error"
    model = torch_model(net, final_activation=not fused).train()
    opt = make_optimizer(project.training)
    topt = _torch_optimizer(name, model.parameters(), overrides)
    for step in range(4):
        x, y = _data(project, seed=step)
        # Some random nets (sum pooling into a 1-unit identity bottleneck) blow up within a few
        # momentum steps; such a run compares overflow, not update rules, so it is discarded.
        assume(_well_conditioned(net, x))
        with np.errstate(over="raise", invalid="raise"):
            try:
                net.train_step(x, y)
                opt.step(net.parameters(), net.gradients())
            except FloatingPointError:
                assume(False)
        assume(all(np.isfinite(p).all() and np.abs(p).max() < 1e6 for p in net.parameters().values()))
        # A bias right before batchnorm has a gradient of exactly zero in exact arithmetic (the mean
        # is subtracted): in float32 it is rounding, which Adam's steps and momentum make visible.
        assume(not any(b["kind"] == "batchnorm" and a["kind"] in ("dense", "conv") and a.get("bias", True)
                       for a, b in _neighbours(project.blocks)))
        if name == "adam":
            # Adam moves every weight by about the learning rate whatever the gradient's size, so a
            # gradient that is float32 rounding around zero (a sum of terms that cancel) has a sign
            # either framework may get: such a run compares rounding, not update rules.
            # With weight decay the step follows g + decay * w, which can cancel the same way.
            decay, weights = overrides["weight_decay"], net.parameters()
            assume(all(((e == 0) | (np.abs(e) > 1e-5)).all() for k, g in net.gradients().items()
                       for e in (g, g + decay * weights[k])))
        topt.zero_grad()
        loss = _torch_loss(project.training.loss, model(torch.from_numpy(x)), torch.from_numpy(y), project.num_classes)
        loss.backward()
        topt.step()
    tparams = dict(model.named_parameters())
    for pname, p in net.parameters().items():
        _close(p, tparams[pname].detach().numpy(), rtol=1e-3, atol=1e-4)
    tbuffers = dict(model.named_buffers())
    for bname, buf in net.buffers().items():
        _close(buf, tbuffers[bname].numpy(), rtol=1e-3, atol=1e-4)
