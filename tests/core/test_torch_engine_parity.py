"""The torch engine against the numpy engine on drawn architectures and the CIFAR-sized net.

Hypothesis draws networks of every block kind (conv, pool of each mode, batchnorm, activation,
residual and branch groups, global pooling, flatten, dense) with every optimiser and loss, and
both engines train them 20 steps on the same batches. In float64 their arithmetic is the same up
to rounding at 1e-16, and twenty steps amplify that to well under 1e-9 (measured: 1e-14 on the
examples), so the tolerance here says the two engines compute the same training, not merely a
similar one. float32 on a CIFAR-sized net (3x32x32) is checked too, with the float32 tolerances
of tests/core/test_torch_engine.py and why they are what they are.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from netbuilder.core.datasets.base import Dataset  # noqa: E402
from netbuilder.core.network import Network  # noqa: E402
from netbuilder.core.project import Project, TrainingSettings  # noqa: E402
from netbuilder.core.torch_engine import TorchTrainer  # noqa: E402
from netbuilder.core.trainer import Trainer  # noqa: E402
from tests.core.test_torch_engine import ADAM_BN, DEVICE, LOSS_RTOL, WEIGHT_TOL  # noqa: E402
from tests.core.test_torch_parity import _neighbours, _well_conditioned, architectures  # noqa: E402

torch.set_num_threads(1)
STEPS = 20
F64 = dict(rtol=1e-9, atol=1e-11)


def dataset(project: Project, n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, *project.input_shape), dtype=np.float32)
    y = rng.integers(0, max(project.num_classes, 2), n)
    names = [str(k) for k in range(max(project.num_classes, 2))]
    return Dataset(name="random", x_train=x, y_train=y, class_names=names)


def train_both(project: Project, data, dtype, steps: int = STEPS):
    """(numpy trainer, torch trainer) after ``steps`` batches of one epoch each way."""
    runs = []
    for cls, options in ((Trainer, {}), (TorchTrainer, {"device": DEVICE})):
        trainer = cls(project.copy(), data, dtype=dtype, **options)
        trainer.fit(epochs=1)
        assert trainer.history.status == "finished", trainer.history.message
        assert len(trainer.history.batch_losses[0]) == steps
        runs.append(trainer)
    return runs


optimisers = st.sampled_from([
    dict(optimizer="sgd", learning_rate=0.05),
    dict(optimizer="momentum", learning_rate=0.02, momentum=0.9, weight_decay=1e-3),
    dict(optimizer="nesterov", learning_rate=0.02, momentum=0.8),
    dict(optimizer="adam", learning_rate=1e-3, weight_decay=1e-3),
])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(architectures(), optimisers)
def test_drawn_networks_train_the_same_on_both_engines(project, optimiser):
    project.training = TrainingSettings(**{**project.training.__dict__, **optimiser, "batch_size": 4,
                                           "validation_fraction": 0.0})
    data = dataset(project, 4 * STEPS, seed=project.training.seed % 7)
    net = Network(project, rng=np.random.default_rng(0), dtype=np.float64)
    # a batch statistic of near-constant inputs: rounding, not arithmetic, decides
    assume(_well_conditioned(net, data.x_train[:4].astype(np.float64)))
    # A bias right before batchnorm has a gradient of exactly zero in exact arithmetic (the mean is
    # subtracted): what is left is rounding, which Adam (a step of about lr whatever the gradient's
    # size) turns into steps of either sign; with the other optimisers it stays at rounding's size.
    # The same through a residual group with no activation of its own: its sum (a projection's
    # bias, an inner block's) reaches the batchnorm unchanged.
    assume(optimiser["optimizer"] != "adam" or not any(
        b["kind"] == "batchnorm" and (a["kind"] in ("dense", "conv") and a.get("bias", True)
                                      or a["kind"] == "residual" and a.get("activation", "identity") == "identity")
        for a, b in _neighbours(project.blocks)))
    numpy_run, torch_run = train_both(project, data, np.float64)
    np.testing.assert_allclose(torch_run.history.batch_losses[0], numpy_run.history.batch_losses[0], **F64)
    a, b = numpy_run.network.state_dict(), torch_run.network.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], err_msg=name, **F64)


CIFAR = [
    {"kind": "conv", "filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"kind": "pool", "mode": "max", "size": 2},
    {"kind": "conv", "filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"kind": "pool", "mode": "max", "size": 2},
    {"kind": "flatten"},
    {"kind": "dense", "units": 128, "activation": "relu"},
    {"kind": "dense", "units": 10, "activation": "softmax"},
]


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_the_cifar_sized_net_trains_the_same_on_both_engines_in_float32(optimizer):
    lr = 0.01 if optimizer == "momentum" else 1e-3
    project = Project(name="cifar", input_shape=(3, 32, 32), num_classes=10, blocks=CIFAR,
                      training=TrainingSettings(optimizer=optimizer, learning_rate=lr, batch_size=16,
                                                validation_fraction=0.0, seed=3))
    numpy_run, torch_run = train_both(project, dataset(project, 16 * STEPS), np.float32)
    # Adam's step is about lr whatever a gradient's size: where one is tiny (a dense weight of an
    # input that is almost always 0 after ReLU) rounding decides the step's sign, so a few of the
    # 524,288 weights may end a step (lr) apart; measured: 2 of them, 7e-5 apart
    loss_rtol, weight_tol = ADAM_BN if optimizer == "adam" else (LOSS_RTOL, WEIGHT_TOL)
    np.testing.assert_allclose(torch_run.history.batch_losses[0], numpy_run.history.batch_losses[0],
                               rtol=loss_rtol)
    a, b = numpy_run.network.state_dict(), torch_run.network.state_dict()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], err_msg=name, **weight_tol)
