"""Class weights in the torch paths: the torch engine's weighted losses against the numpy engine's,
both engines training the same with class weights, the exported train.py's check with them on,
and two distributed processes whose gradient is the whole batch's weighted mean.

Tolerances: float64 runs (the engines' arithmetic is the same up to rounding) as in
tests/core/test_torch_engine_parity.py; the distributed run's float32 ones as in
tests/core/test_distributed.py, whose module doc says what they are measured against.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netbuilder.core.datasets.base import Dataset  # noqa: E402
from netbuilder.core.export import ExportError, train_script  # noqa: E402
from netbuilder.core.export.torch_train_export import _load_script, export_torch_train  # noqa: E402
from netbuilder.core.losses import make_loss  # noqa: E402
from netbuilder.core.network import Network  # noqa: E402
from netbuilder.core.project import Project, TrainingSettings  # noqa: E402
from netbuilder.core.torch_engine import TorchTrainer  # noqa: E402
from netbuilder.core.torch_losses import torch_loss  # noqa: E402
from netbuilder.core.trainer import Trainer  # noqa: E402
from tests.core.test_distributed import (  # noqa: E402
    CONV,
    LOSS_RTOL,
    WEIGHT_TOL,
    WORKER,
    one_process,
    torchrun,
    write_project,
)
from tests.core.test_torch_engine import DEVICE  # noqa: E402

torch.set_num_threads(1)
F64 = dict(rtol=1e-9, atol=1e-11)
TEN = [0.2, 1.0, 3.0, 0.5, 5.0, 1.5, 0.8, 2.5, 0.3, 4.0]  # far from equal: a wrong normaliser shows


@pytest.mark.parametrize("kind, k", [("cross_entropy", 4), ("binary_cross_entropy", 4),
                                     ("binary_cross_entropy", 1), ("squared_error", 4), ("squared_error", 1)])
def test_the_torch_losses_are_the_numpy_ones(kind, k):
    rng = np.random.default_rng(k)
    z = rng.standard_normal((7, k)) * 2
    labels = rng.integers(0, max(k, 2), 7)
    weights = np.array(TEN[:max(k, 2)])
    loss = make_loss(kind, weights)
    target = np.eye(k)[labels] if k > 1 else labels.reshape(-1, 1).astype(float)
    value, grad = loss.value_and_grad(z, target)
    zt = torch.tensor(z, requires_grad=True)
    theirs = torch_loss(torch.nn.functional, kind, zt, torch.tensor(labels), torch.tensor(weights))
    theirs.backward()
    assert theirs.item() == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(zt.grad.numpy(), grad, rtol=1e-10, atol=1e-14)


def skewed(project: Project, n: int, seed: int = 0) -> Dataset:
    """Random images whose labels are mostly class 0."""
    rng = np.random.default_rng(seed)
    classes = max(project.num_classes, 2)
    x = rng.random((n, *project.input_shape), dtype=np.float32)
    y = np.where(rng.random(n) < 0.7, 0, rng.integers(0, classes, n))
    return Dataset("skewed", x, y, [f"c{c}" for c in range(classes)])


def small(loss: str, outputs: int, activation: str, class_weights) -> Project:
    blocks = [{"kind": "conv", "filters": 3, "kernel_size": 3, "activation": "relu"}, {"kind": "flatten"},
              {"kind": "dense", "units": outputs, "activation": activation}]
    return Project(name="small", input_shape=(1, 6, 6), num_classes=outputs, blocks=blocks,
                   training=TrainingSettings(loss=loss, optimizer="momentum", learning_rate=0.05, batch_size=5,
                                             epochs=1, validation_fraction=0.2, seed=2,
                                             class_weights=class_weights))


@pytest.mark.parametrize("loss, outputs, activation, weights", [
    ("cross_entropy", 4, "softmax", "balanced"), ("cross_entropy", 4, "softmax", [0.5, 4.0, 1.0, 2.0]),
    ("binary_cross_entropy", 1, "sigmoid", "balanced"), ("squared_error", 4, "sigmoid", [3.0, 1.0, 0.25, 1.0]),
])
def test_both_engines_train_the_same_with_class_weights(loss, outputs, activation, weights):
    project = small(loss, outputs, activation, weights)
    data = skewed(project, 100)
    runs = []
    for cls, options in ((Trainer, {}), (TorchTrainer, {"device": DEVICE})):
        trainer = cls(project.copy(), data, dtype=np.float64, **options)
        trainer.fit(epochs=2)
        assert trainer.history.status == "finished", trainer.history.message
        runs.append(trainer)
    numpy_run, torch_run = runs
    assert numpy_run.class_weights == torch_run.class_weights and numpy_run.class_weights is not None
    assert len(set(numpy_run.class_weights)) > 1  # the weights differ: the losses really are weighted
    np.testing.assert_allclose(sum(torch_run.history.batch_losses, []), sum(numpy_run.history.batch_losses, []),
                               **F64)
    np.testing.assert_allclose(torch_run.history.val_loss, numpy_run.history.val_loss, **F64)
    np.testing.assert_allclose(torch_run.history.train_loss, numpy_run.history.train_loss, **F64)
    a, b = numpy_run.network.state_dict(), torch_run.network.state_dict()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], err_msg=name, **F64)
    # the same run without weights is another run: the comparison above can fail
    plain = Trainer(small(loss, outputs, activation, None), data, dtype=np.float64)
    plain.fit(epochs=2)
    assert abs(plain.history.val_loss[-1] - numpy_run.history.val_loss[-1]) > 1e-4


def test_the_training_script_uses_the_runs_weights_and_its_check_passes(tmp_path):
    project = small("cross_entropy", 4, "softmax", "balanced")
    data = skewed(project, 80)
    report = export_torch_train(Network(project), tmp_path / "out", dataset=data)
    assert report.passed, report
    script, _ = _load_script(tmp_path / "out" / "train.py", tmp_path / "out" / "model.py")
    resolved = Trainer(project.copy(), data).class_weights
    assert script.CLASS_WEIGHTS == resolved and len(set(resolved)) > 1
    assert 'The project says "balanced"' in (tmp_path / "out" / "train.py").read_text()


def test_the_export_check_fails_when_the_script_leaves_the_weights_out(tmp_path, monkeypatch):
    """The check sees the weights: a script trained without them does not pass."""
    real = train_script.script_source
    monkeypatch.setattr(train_script, "script_source", lambda **kw: real(**{**kw, "class_weights": None}))
    project = small("cross_entropy", 4, "softmax", [0.2, 5.0, 1.0, 3.0])
    with pytest.raises(ExportError, match="does not train as the app does"):
        export_torch_train(Network(project), tmp_path / "out", dataset=skewed(project, 80))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_processes_train_to_the_one_process_weights_with_class_weights(tmp_path):
    """Shards of 8 and 7 images (and a last batch of one) weigh differently: each process's loss is
    divided by the global batch's weight, so the gradient is the one process's; in float64 the two
    agree to rounding over three epochs (the worker's second run of its first project)."""
    path = write_project(tmp_path, "weighted", CONV)
    doc = json.loads(path.read_text())
    doc["training"]["class_weights"] = TEN
    path.write_text(json.dumps(doc))
    out = tmp_path / "out"
    out.mkdir()
    done = torchrun(2, str(WORKER), str(out), str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("weighted", "float64"):
        with np.load(out / f"{name}.rank0.npz") as z0, np.load(out / f"{name}.rank1.npz") as z1:
            assert all(np.array_equal(z0[k], z1[k]) for k in z0.files), name
    record = json.loads((out / "weighted.rank0.json").read_text())
    with np.load(out / "weighted.rank0.npz") as z:
        weights = {k: z[k] for k in z.files}
    trainer, history = one_process(path)
    assert trainer.class_weights == TEN
    np.testing.assert_allclose(record["batch_losses"], history.batch_losses[0], rtol=LOSS_RTOL)
    e = history.epochs[-1]
    np.testing.assert_allclose([record["train_loss"], record["val_loss"]], [e.train_loss, e.val_loss], rtol=LOSS_RTOL)
    reference = trainer.network.state_dict()
    for k in reference:
        np.testing.assert_allclose(weights[k], reference[k], err_msg=k, **WEIGHT_TOL)

    record = json.loads((out / "float64.rank0.json").read_text())
    with np.load(out / "float64.rank0.npz") as z:
        weights = {k: z[k] for k in z.files}
    trainer, history = one_process(path, epochs=3, dtype=np.float64)
    np.testing.assert_allclose(record["batch_losses"], sum(history.batch_losses, []), rtol=1e-12)
    reference = trainer.network.state_dict()
    for k in reference:
        np.testing.assert_allclose(weights[k], reference[k], rtol=1e-12, atol=1e-12, err_msg=k)
    plain, _ = one_process(write_project(tmp_path, "plain", CONV), epochs=3, dtype=np.float64)
    assert not np.allclose(plain.network.state_dict()["dense1.weight"], reference["dense1.weight"], rtol=1e-6)
