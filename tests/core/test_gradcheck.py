"""The gradient check of a user's network (core/gradcheck.py) and ``netbuilder gradcheck``."""
from __future__ import annotations

import json

import numpy as np
import pytest

from netbuilder.core import cli
from netbuilder.core.gradcheck import TOLERANCE, batch_from_project, check_gradients, check_project, format_report
from netbuilder.core.layers import Conv2D
from netbuilder.core.layers.groups import Residual
from netbuilder.core.project import Project, load_project
from netbuilder.core.resources import example_names, example_path

SLOW = {"resnet_small", "vgg_bn", "inception_mini"}


def example(name: str) -> Project:
    return load_project(example_path(name))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in example_names()])
def test_every_example_passes(name):
    project = example(name)
    report = check_project(project, samples_per_block=6, batch=3, base_dir=example_path(name).parent)
    assert report.passed, format_report(report)
    # every block is listed, the inner blocks of groups too, and every block with parameters was compared
    from netbuilder.core.network import Network
    paths = [s.path for s in Network(project).walk_stages()]
    assert [b.path for b in report.blocks] == paths
    for b in report.blocks:
        if b.parameters:
            assert b.checked > 0 and b.max_error is not None and b.max_error < TOLERANCE, b
        elif b.depth == 0:  # checked through its input
            assert b.inputs > 0 and b.max_error < TOLERANCE, b
        else:
            assert b.max_error is None and b.passed


def test_groups_cover_their_inner_blocks():
    report = check_project(example("resnet_small"), samples_per_block=3, batch=2)
    rows = {b.path: b for b in report.blocks}
    inner = [b for p, b in rows.items() if p.startswith("residual2.")]
    assert {b.path for b in inner} == {"residual2.conv1", "residual2.batchnorm1", "residual2.conv2",
                                       "residual2.batchnorm2"}
    group = rows["residual2"]
    # the group's own parameters (its projection) plus its inner blocks'
    assert group.checked == sum(b.checked for b in inner) + 3
    assert group.inputs == 3 and group.max_error >= max(b.max_error for b in inner)
    assert group.depth == 0 and all(b.depth == 1 for b in inner)


def test_deterministic_from_the_seed():
    project = example("lenet5")
    x, y, *_ = batch_from_project(project, 2)
    a = check_gradients(project, x, y, 4, rng=7).to_dict()
    b = check_gradients(project, x, y, 4, rng=7).to_dict()
    assert a == b


def test_a_broken_conv_weight_gradient_fails_naming_the_blocks(monkeypatch):
    original = Conv2D.backward

    def broken(self, grad_out):
        dx = original(self, grad_out)
        self.grads["weight"] = self.grads["weight"] * 1.01
        return dx
    monkeypatch.setattr(Conv2D, "backward", broken)
    report = check_project(example("lenet5"), samples_per_block=6, batch=2)
    assert not report.passed
    assert {b.path for b in report.failed} == {"conv1", "conv2"}
    assert all(b.max_error > 1e-3 for b in report.failed)
    assert "conv1.weight[" in {b.path: b for b in report.blocks}["conv1"].worst
    text = format_report(report)
    assert "conv1" in text and "FAIL" in text and "WRONG" in report.verdict()


def test_a_broken_skip_gradient_fails_the_blocks_before_the_group(monkeypatch):
    original = Residual.backward

    def broken(self, grad_out):
        d = original(self, grad_out)
        return None if d is None else d * 1.01  # the sum of the inner and skip gradients, off by 1 %
    monkeypatch.setattr(Residual, "backward", broken)
    report = check_project(example("resnet_small"), samples_per_block=3, batch=2)
    rows = {b.path: b for b in report.blocks}
    assert not rows["conv1"].passed and not rows["residual1.conv1"].passed
    assert rows["residual3.conv1"].passed and rows["dense1"].passed  # after the last group's backward
    assert not rows["residual3"].passed and rows["residual3"].worst.startswith("residual3 input[")


def test_a_broken_pooling_backward_fails_the_pooling_blocks(monkeypatch):
    from netbuilder.core.layers.pool import Pool2D
    original = Pool2D.backward
    monkeypatch.setattr(Pool2D, "backward", lambda self, g: original(self, g) * 1.01)
    report = check_project(example("lenet5"), samples_per_block=4, batch=2)
    rows = {b.path: b for b in report.blocks}
    assert not rows["pool1"].passed and not rows["pool2"].passed and "pool1 input[" in rows["pool1"].worst
    assert rows["flatten1"].passed and rows["dense1"].passed


def kink_project(activation: str = "relu") -> Project:
    return Project.from_dict({
        "format": 2, "name": "kinks", "input_shape": [1, 8, 8], "num_classes": 3,
        "blocks": [
            {"kind": "conv", "filters": 3, "kernel_size": 3, "stride": 1, "padding": "same", "activation": activation},
            {"kind": "pool", "mode": "max", "size": 2, "stride": None, "padding": 0},
            {"kind": "conv", "filters": 4, "kernel_size": 3, "stride": 1, "padding": "same", "activation": activation},
            {"kind": "global_pool", "mode": "max"},
            {"kind": "dense", "units": 3, "activation": "softmax"},
        ],
        "training": {"loss": "cross_entropy", "seed": 3},
        "dataset": {"kind": "shapes"},
    })


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_inputs_at_kinks_still_pass(activation):
    # blank images: with zero biases every ReLU input is exactly 0; constant images: every max-pool
    # window and the global max are ties
    x = np.zeros((4, 1, 8, 8))
    x[1] = 0.5
    x[2, :, :, :4] = 1.0
    x[3, :, ::2, :] = 1.0
    y = np.array([0, 1, 2, 1])
    report = check_gradients(kink_project(activation), x, y, samples_per_block=30, rng=1)
    assert report.passed, format_report(report)
    assert all(b.checked > 0 for b in report.blocks if b.parameters)


def test_the_kink_handling_is_what_passes_them(monkeypatch):
    # without it the same check fails: those inputs really sit on kinks
    from netbuilder.core import gradcheck
    monkeypatch.setattr(gradcheck, "_same", lambda a, b: True)
    x = np.zeros((4, 1, 8, 8))
    x[1] = 0.5
    report = check_gradients(kink_project(), x, np.array([0, 1, 2, 1]), samples_per_block=30, rng=1)
    assert not report.passed


def _kinked(flat, f, kinks):
    """A loss of one parameter that records which side of each kink it is on, as the network's does."""
    record: list = []

    def loss():
        record.clear()
        record.append(np.packbits(np.array([flat[0] > k for k in kinks])))
        return f(flat[0])
    loss()
    return loss, record, list(record)


def test_a_point_on_a_kink_is_differenced_on_the_engines_side():
    from netbuilder.core.gradcheck import _derivative
    # relu(θ) * 3 at θ = 0: the engine's ReLU'(0) = 0 is the left piece's slope
    flat = np.array([0.0])
    loss, record, pattern0 = _kinked(flat, lambda t: 3 * max(t, 0.0) + t * t, [0.0])
    assert _derivative(flat, 0, loss, record, pattern0, 1e-5) == pytest.approx(0.0, abs=1e-9)
    assert flat[0] == 0.0  # restored
    # just right of the kink: the right piece, 3 + 2θ
    flat[0] = 1e-7
    loss, record, pattern0 = _kinked(flat, lambda t: 3 * max(t, 0.0) + t * t, [0.0])
    assert _derivative(flat, 0, loss, record, pattern0, 1e-5) == pytest.approx(3 + 2e-7, rel=1e-9)


def test_a_point_between_close_kinks_is_skipped():
    from netbuilder.core.gradcheck import _derivative
    # kinks at 0 and 2e-6 with θ = 1e-6 between: every step tried (1e-5, 1e-6) crosses one
    flat = np.array([1e-6])
    loss, record, pattern0 = _kinked(flat, lambda t: abs(t) + abs(t - 2e-6), [0.0, 2e-6])
    assert _derivative(flat, 0, loss, record, pattern0, 1e-5) is None
    assert flat[0] == 1e-6


def test_random_inputs_when_the_data_cannot_be_loaded(tmp_path):
    project = example("xor")
    project.dataset = {"kind": "npz", "path": str(tmp_path / "missing.npz")}
    x, y, data, random_data = batch_from_project(project, 5)
    assert random_data and "random inputs" in data and x.shape[0] == 5
    report = check_project(project, samples_per_block=4, batch=5)
    assert report.random_data and report.passed and "random" in format_report(report)


def test_trained_weights_are_checked_where_given():
    from netbuilder.core.network import Network
    project = example("mlp")
    state = Network(project, rng=np.random.default_rng(5)).state_dict()
    report = check_project(project, samples_per_block=4, batch=2, state=state)
    assert report.weights == "trained" and report.passed


def test_progress_reaches_the_total():
    seen = []
    check_project(example("lenet5"), samples_per_block=3, batch=2, progress=lambda d, t: seen.append((d, t)))
    # 5 blocks with parameters, and the inputs of pool1, pool2 and flatten1
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] == 24
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


# --- the command line ---------------------------------------------------------------------------
def test_cli_prints_one_line_per_block_and_exits_0(capsys):
    code = cli.main(["gradcheck", "lenet5", "--samples", "3", "--batch", "2"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    conv1 = next(line for line in out if line.startswith("conv1 "))
    assert "max rel error" in conv1 and " pass " in conv1 and "(3 parameters)" in conv1
    assert any(line.startswith("pool1") and "(3 input values)" in line for line in out)
    assert out[-1].startswith("gradients verified: 24 values in 8 blocks")


def test_cli_exits_1_when_a_block_fails(capsys, monkeypatch):
    original = Conv2D.backward

    def broken(self, grad_out):
        dx = original(self, grad_out)
        self.grads["bias"] = self.grads["bias"] * 0.9
        return dx
    monkeypatch.setattr(Conv2D, "backward", broken)
    code = cli.main(["gradcheck", "lenet5", "--samples", "4", "--batch", "2"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert "FAIL" in next(line for line in out if line.startswith("conv2 "))
    assert " pass " in next(line for line in out if line.startswith("dense1 "))
    assert "WRONG" in out[-1] and "conv1, conv2" in out[-1]


def test_cli_json(capsys):
    code = cli.main(["gradcheck", "resnet_small", "--samples", "2", "--batch", "2", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["passed"] and report["tolerance"] == TOLERANCE
    assert "residual1.conv1" in [b["block"] for b in report["blocks"]]


def test_cli_bad_project(capsys, tmp_path):
    assert cli.main(["gradcheck", str(tmp_path / "nope.json")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_cli_checks_given_weights(capsys, tmp_path):
    from netbuilder.core.network import Network
    from netbuilder.core.weights import save_weights
    project = example("mlp")
    path = tmp_path / "w.npz"
    save_weights(path, Network(project, rng=np.random.default_rng(2)), project)
    assert cli.main(["gradcheck", "mlp", "--weights", str(path), "--samples", "3", "--batch", "2"]) == 0
    assert "trained weights" in capsys.readouterr().out
    assert cli.main(["gradcheck", "lenet5", "--weights", str(path)]) == 1  # weights of another network
    assert "weights do not match" in capsys.readouterr().err
