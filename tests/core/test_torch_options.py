"""The torch engine's speed options on the CPU: ``amp`` (bf16 / fp16 autocast), ``channels_last``
and ``compile`` (core/torch_engine.py), each off by default, and their command-line flags.

Tolerances. bfloat16 keeps 8 significant bits (a relative 2**-8 = 0.4% per rounding), so a bf16
run is not the float32 run: over the 20 steps here its batch losses were measured at most 1.6%
from float32's (LeNet-5 with momentum or Adam) and 0.5% (VGG with BatchNorm); the test allows 5%,
enough for rounding and small enough to catch a step that went wrong (a wrong gradient moves the
loss by tens of percent within a few steps). channels_last changes only the memory layout: on the
CPU oneDNN then picks other kernels that sum in another order, so LeNet-5 agrees with the plain
run to float32 rounding (measured 2e-7; the parity tolerances of test_torch_engine.py), while
BatchNorm's channels-last kernel rounds its statistics differently and the gap grows with the
steps as in the engine-parity tests (measured 3.4e-7 over the first 6 losses, 4.3e-4 after 20).
fp16 is trained with a GradScaler that skips the first steps while it finds its scale (gradients
times 65,536 overflow float16), so its run is compared for training, not for closeness.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netbuilder.core import cli  # noqa: E402
from netbuilder.core.errors import TrainingError  # noqa: E402
from netbuilder.core.torch_engine import TorchTrainer, make_trainer  # noqa: E402
from tests.core.test_torch_engine import (  # noqa: E402
    CASES,
    LOSS_RTOL,
    WEIGHT_TOL,
    assert_same_weights,
    shapes,
    write_lenet,
)

BF16_LOSS_RTOL = 5e-2


def run(case, data, **options):
    trainer = TorchTrainer(CASES[case](), data, device="cpu", **options)
    trainer.fit(epochs=1)
    return trainer


def assert_weights_came_home(trainer):
    weights = trainer.network.state_dict()
    assert all(w.flags.c_contiguous for w in weights.values())
    assert all(w.dtype == np.float32 for w in weights.values() if w.dtype.kind == "f")
    assert_same_weights(trainer.weights(), weights)


def test_the_options_are_off_by_default():
    trainer = TorchTrainer(CASES["lenet5-sgd"](), shapes(), device="cpu")
    assert (trainer.amp, trainer.channels_last, trainer.compile) == (None, False, False)


@pytest.mark.parametrize("case", ["lenet5-momentum", "lenet5-adam", "vgg_bn-momentum"])
def test_bf16_on_the_cpu_trains_close_to_float32(case):
    data = shapes()
    plain, bf16 = run(case, data), run(case, data, amp="bf16")
    assert bf16.history.status == "finished", bf16.history.message
    a, b = plain.history.batch_losses[0], bf16.history.batch_losses[0]
    assert len(b) == 20 and bf16.optimizer.steps == 20
    np.testing.assert_allclose(b, a, rtol=BF16_LOSS_RTOL)
    assert bf16.history.val_loss[0] == pytest.approx(plain.history.val_loss[0], rel=BF16_LOSS_RTOL)
    assert_weights_came_home(bf16)  # float32 weights, as without autocast


def test_fp16_on_the_cpu_trains_with_a_grad_scaler():
    data = shapes()
    plain, fp16 = run("lenet5-momentum", data), run("lenet5-momentum", data, amp="fp16")
    assert fp16.history.status == "finished", fp16.history.message
    losses = fp16.history.batch_losses[0]
    assert len(losses) == 20 and np.isfinite(losses).all()
    assert 14 <= fp16.optimizer.steps <= 20  # the steps the scaler skipped are not counted
    assert fp16._scaler is not None and fp16._scaler.get_scale() < 65536.0
    assert fp16.history.val_loss[0] < 1.2 * plain.history.val_loss[0]
    assert_weights_came_home(fp16)


@pytest.mark.parametrize("case", ["lenet5-sgd", "lenet5-momentum", "lenet5-adam"])
def test_channels_last_on_the_cpu_computes_the_same(case):
    data = shapes()
    plain, cl = run(case, data), run(case, data, channels_last=True)
    assert cl.history.status == "finished", cl.history.message
    assert cl._model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(cl.history.batch_losses[0], plain.history.batch_losses[0], rtol=LOSS_RTOL)
    assert_same_weights(plain.weights(), cl.weights(), WEIGHT_TOL)
    assert_weights_came_home(cl)


def test_channels_last_through_batchnorm_drifts_as_float32_rounding_does():
    data = shapes()
    plain, cl = run("vgg_bn-momentum", data), run("vgg_bn-momentum", data, channels_last=True)
    a, b = plain.history.batch_losses[0], cl.history.batch_losses[0]
    np.testing.assert_allclose(b[:6], a[:6], rtol=5e-6)
    np.testing.assert_allclose(b, a, rtol=5e-3)
    assert_weights_came_home(cl)


def test_a_compile_that_fails_ends_the_run_saying_why(monkeypatch):
    def broken(model, *args, **kwargs):
        raise RuntimeError("no C++ compiler here\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    trainer = run("lenet5-sgd", shapes(), compile=True)
    assert trainer.history.status == "failed"
    assert trainer.history.message == (
        "training failed: TrainingError: torch.compile could not compile the model on cpu "
        "(RuntimeError: no C++ compiler here); train without compile")


def test_a_compiled_model_that_fails_at_its_first_call_ends_the_run_saying_why(monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    def lazy(model, *args, **kwargs):
        def call(*a, **k):
            raise TorchDynamoException("InvalidCxxCompiler: No working C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", lazy)
    trainer = run("lenet5-sgd", shapes(), compile=True)
    assert trainer.history.status == "failed"
    assert "torch.compile could not compile the model on cpu (TorchDynamoException: InvalidCxxCompiler" in (
        trainer.history.message)
    assert_same_weights(trainer.weights(), trainer.network.state_dict())


def test_a_compiled_model_with_wrong_gradients_is_refused(monkeypatch):
    """The first compiled step is checked against the plain model (what caught torch 2.13.0's
    inductor giving LeNet-5's convolutions zero gradients on this CPU at batch 16, not at 64)."""
    def wrong(model, *args, **kwargs):
        return lambda x: model(x).detach() + 0 * sum(p.sum() for p in list(model.parameters())[-2:])

    monkeypatch.setattr(torch, "compile", wrong)
    trainer = run("lenet5-sgd", shapes(), compile=True)
    assert trainer.history.status == "failed"
    assert "torch.compile gives wrong gradients on cpu" in trainer.history.message
    assert "conv1.weight's is 1 (relative) from the uncompiled model's; train without compile" in (
        trainer.history.message)


@pytest.mark.slow
def test_compile_on_the_cpu_trains_as_the_plain_model():
    """A real torch.compile (inductor, with this machine's C++ compiler; 10-20 s): a dense network,
    which inductor compiles right here, trains as without it within the parity tolerances."""
    data = shapes()
    plain, compiled = run("mlp-squared_error", data), run("mlp-squared_error", data, compile=True)
    assert compiled.history.status == "finished", compiled.history.message
    np.testing.assert_allclose(compiled.history.batch_losses[0], plain.history.batch_losses[0], rtol=LOSS_RTOL)
    assert compiled.history.val_loss[0] == pytest.approx(plain.history.val_loss[0], rel=LOSS_RTOL)
    assert_same_weights(plain.weights(), compiled.weights(), WEIGHT_TOL)
    assert_weights_came_home(compiled)


@pytest.mark.slow
def test_a_compiled_convolutional_net_trains_right_or_is_refused():
    """LeNet-5 at batch 16 through the real torch.compile: either it trains as the plain model does
    (within the parity tolerances) or the first step's check refuses it (torch 2.13.0's inductor on
    this CPU: zero gradients for the convolutions); never a run that is silently wrong."""
    data = shapes()
    plain, compiled = run("lenet5-momentum", data), run("lenet5-momentum", data, compile=True)
    if compiled.history.status == "failed":
        assert "torch.compile gives wrong gradients on cpu" in compiled.history.message
        assert compiled.history.batch_losses[0] == []  # refused before any step was taken
        assert_same_weights(compiled.weights(), TorchTrainer(CASES["lenet5-momentum"](), data).weights())
        return
    assert compiled.history.status == "finished", compiled.history.message
    np.testing.assert_allclose(compiled.history.batch_losses[0], plain.history.batch_losses[0], rtol=LOSS_RTOL)
    assert_same_weights(plain.weights(), compiled.weights(), WEIGHT_TOL)


def test_option_problems():
    data = shapes(100)
    with pytest.raises(TrainingError, match="unknown mixed precision 'fp8'; choose bf16 or fp16"):
        TorchTrainer(CASES["lenet5-sgd"](), data, device="cpu", amp="fp8")
    with pytest.raises(TrainingError, match="mixed precision .bf16. trains a float32 network, not float64"):
        TorchTrainer(CASES["lenet5-sgd"](), data, device="cpu", amp="bf16", dtype=np.float64)
    with pytest.raises(TrainingError, match="^amp, compile: only the torch engine has these options$"):
        make_trainer(CASES["lenet5-sgd"](), data, engine="numpy", amp="bf16", compile=True)
    # off is off on either engine
    assert make_trainer(CASES["lenet5-sgd"](), data, engine="numpy", amp=None, channels_last=False).engine == "numpy"


# --- the command line -----------------------------------------------------------------------------
def test_cli_trains_with_bf16_and_channels_last(tmp_path, capsys):
    path, weights = write_lenet(tmp_path), tmp_path / "W.npz"
    assert cli.main(["train", str(path), "--engine", "torch", "--device", "cpu", "--amp", "bf16", "--channels-last",
                     "--epochs", "1", "--out", str(weights), "--quiet"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == ("training 'LeNet-5' on 270 images, 30 for validation: 1 epoch of 5 batches, torch engine "
                        "on cpu, bf16 autocast, channels-last")
    assert lines[2] == f"finished 1 epoch; weights saved to {weights}"
    assert "Traceback" not in err


@pytest.mark.parametrize("flags,named", [(["--amp", "bf16"], "--amp"), (["--compile"], "--compile"),
                                         (["--channels-last", "--compile"], "--channels-last and --compile")])
def test_cli_speed_options_need_the_torch_engine(tmp_path, capsys, flags, named):
    path = write_lenet(tmp_path, train_size=100, test_size=0)
    assert cli.main(["train", str(path), *flags]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    verb = "need" if " and " in named else "needs"
    assert err == f"netbuilder: {named} {verb} the torch engine: add --engine torch\n"


def test_cli_unknown_amp_is_one_line(tmp_path, capsys):
    path = write_lenet(tmp_path, train_size=100, test_size=0)
    assert cli.main(["train", str(path), "--engine", "torch", "--amp", "fp8"]) == 2
    err = capsys.readouterr()[1]
    assert err.splitlines()[-1].startswith("netbuilder train: error: argument --amp: invalid choice: 'fp8'")


def test_fp16_divergence_is_reported_and_the_next_run_starts_clean():
    from tests.core.test_torch_engine import mlp

    trainer = TorchTrainer(mlp("squared_error", "identity", optimizer="sgd", learning_rate=1e6), shapes(),
                           device="cpu", amp="fp16")
    trainer.fit(epochs=1)
    assert trainer.history.status == "diverged", trainer.history.message
    assert "the loss became" in trainer.history.message
    trainer.set_learning_rate(1e-3)
    trainer.fit(epochs=1)  # the scaler's record of the diverged step does not trip this run
    assert trainer.history.status in ("finished", "diverged"), trainer.history.message
