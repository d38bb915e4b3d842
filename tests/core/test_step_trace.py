"""Step: one mini-batch, recorded block by block (a^[l−1], Z, a, δ, ∂L/∂W, ΔW), then a pause."""
from __future__ import annotations

import numpy as np
import pytest

from netbuilder.core.layers.activation import softmax
from netbuilder.core.run_control import RunControl
from netbuilder.core.step_trace import StepTrace, TensorStats
from netbuilder.core.trainer import BatchEnd, RunEnded, Trainer
from tests.core.test_groups import nested_project
from tests.core.test_trainer import blobs, conv_project, mlp_project


def step_once(trainer: Trainer, steps: int = 1):
    """Ask for a Step before the run; return (events up to the trace(s), the traces); the run is
    then stopped and drained."""
    trainer.keep_step_arrays = True
    trainer.step()
    run = trainer.run()
    events, traces = [], []
    for event in run:
        events.append(event)
        if isinstance(event, StepTrace):
            traces.append(event)
            assert trainer.paused
            if len(traces) == steps:
                break
            trainer.step()
    trainer.stop()
    rest = list(run)
    assert isinstance(rest[-1], RunEnded) and rest[-1].status == "stopped"
    assert not any(isinstance(e, BatchEnd) for e in rest)  # the pause held: no batch after the Step's
    return events, traces


def test_one_step_applies_exactly_one_update_and_pauses():
    trainer = Trainer(mlp_project(optimizer="sgd", learning_rate=0.1), blobs())
    before = trainer.network.state_dict()
    events, (trace,) = step_once(trainer)
    assert [type(e).__name__ for e in events] == ["RunStarted", "BatchEnd", "StepTrace"]
    assert trainer.optimizer.steps == 1 and trace.optimizer_steps == 1
    assert (trace.epoch, trace.batch) == (1, 1) and trace.batch_size == 16
    after = trainer.network.state_dict()
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert sorted(changed) == sorted(trainer.network.parameters())
    # the trace's ΔW is exactly the weights' change over the run (one update)
    for block in trace.blocks:
        for p in block.params:
            np.testing.assert_array_equal(p.arrays["update"], after[p.name] - before[p.name])


def test_step_again_advances_one_more_batch():
    trainer = Trainer(mlp_project(), blobs())
    events, traces = step_once(trainer, steps=2)
    assert [t.batch for t in traces] == [1, 2] and trainer.optimizer.steps == 2
    assert [e.batch for e in events if isinstance(e, BatchEnd)] == [1, 2]


def test_resume_after_a_step_trains_to_the_end_without_more_traces():
    trainer = Trainer(mlp_project(epochs=1), blobs())
    trainer.step()
    run = trainer.run()
    seen = []
    for event in run:
        seen.append(event)
        if isinstance(event, StepTrace):
            trainer.resume()
    assert sum(isinstance(e, StepTrace) for e in seen) == 1
    assert seen[-1].status == "finished" and trainer.optimizer.steps == 3


def test_delta_of_the_last_block_is_the_softmax_cross_entropy_gradient():
    trainer = Trainer(mlp_project(optimizer="sgd"), blobs())
    _, (trace,) = step_once(trainer)
    last = trace.blocks[-1]
    assert last.delta_of == "z"
    z, a = last.arrays["z"], last.arrays["a"]
    onehot = trainer.network.targets(trainer._ybuf[:len(z)])
    p = softmax(z.astype(np.float64), axis=1)
    np.testing.assert_allclose(a, p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(last.arrays["delta"], (p - onehot) / len(z), rtol=1e-4, atol=1e-7)
    # Z = W a^[l−1] + b, from the weights before the step
    dense = trace.block(last.path)
    w, b = (next(q.arrays["weight"] for q in dense.params if q.name.endswith(k)) for k in ("weight", "bias"))
    np.testing.assert_allclose(z, last.arrays["a_prev"] @ w.T + b, rtol=1e-5, atol=1e-5)
    # ∂L/∂W = δᵀ a^[l−1]
    grad = next(q.arrays["grad"] for q in dense.params if q.name.endswith("weight"))
    np.testing.assert_allclose(grad, last.arrays["delta"].T @ last.arrays["a_prev"], rtol=1e-4, atol=1e-6)


def test_sgd_update_is_minus_lr_times_the_gradient():
    trainer = Trainer(conv_project(optimizer="sgd", learning_rate=0.05), blobs())
    _, (trace,) = step_once(trainer)
    assert trace.learning_rate == 0.05
    params = [p for b in trace.blocks for p in b.params]
    assert {p.name for p in params} == set(trainer.network.parameters())
    for p in params:
        w = p.arrays["weight"]
        np.testing.assert_allclose(p.arrays["update"], -0.05 * p.arrays["grad"], rtol=1e-4,
                                   atol=4 * np.finfo(np.float32).eps * (np.abs(w).max() + 1))
        if np.any(w):
            assert p.ratio == pytest.approx(np.linalg.norm(p.arrays["update"]) / np.linalg.norm(w), rel=1e-5)
        else:  # a bias that starts at zero: any move is infinitely large relative to it
            assert p.ratio == (np.inf if np.any(p.arrays["update"]) else 0.0)


def test_momentum_and_adam_updates_follow_their_rules_on_the_second_step():
    for kind in ("momentum", "nesterov", "adam"):
        trainer = Trainer(mlp_project(optimizer=kind, learning_rate=0.01, momentum=0.9, weight_decay=1e-3), blobs())
        _, (first, second) = step_once(trainer, steps=2)
        lr, wd, mu = 0.01, 1e-3, 0.9
        for b1, b2 in zip(first.blocks, second.blocks):
            for p1, p2 in zip(b1.params, b2.params):
                d1 = p1.arrays["grad"].astype(np.float64) + wd * p1.arrays["weight"]
                d2 = p2.arrays["grad"].astype(np.float64) + wd * p2.arrays["weight"]
                if kind == "adam":
                    m = 0.1 * d1 * 0.9 + 0.1 * d2
                    v = 0.001 * d1 * d1 * 0.999 + 0.001 * d2 * d2
                    expect = -lr / (1 - 0.9 ** 2) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** 2) + 1e-8)
                    rtol = 1e-3
                else:
                    buf = mu * d1 + d2
                    expect = -lr * (d2 + mu * buf if kind == "nesterov" else buf)
                    rtol = 1e-4
                scale = np.abs(p2.arrays["weight"]).max() + 1
                np.testing.assert_allclose(p2.arrays["update"], expect, rtol=rtol,
                                           atol=8 * np.finfo(np.float32).eps * scale, err_msg=f"{kind} {p2.name}")


def test_every_block_of_a_nested_net_is_traced_by_path_with_its_error_term():
    trainer = Trainer(nested_project(), blobs(n=48, shape=(2, 6, 6)))
    _, (trace,) = step_once(trainer)
    paths = [b.path for b in trace.blocks]
    net_paths = [s.path for s in trainer.network.walk_stages()]
    assert sorted(paths) == sorted(net_paths)
    assert paths.index("res1.conv1") < paths.index("res1.batchnorm1") < paths.index("res1")
    res = trace.block("res1")
    assert res.delta_of == "z" and "inner" in res.formula and res.depth == 0
    conv = trace.block("res1.conv1")
    assert conv.depth == 1 and conv.delta_of == "z" and "∗" in conv.formula
    assert set(conv.tensors) == {"a_prev", "z", "a", "delta"}
    assert conv.maps["z"].shape == conv.tensors["z"].shape[1:]
    np.testing.assert_array_equal(conv.maps["a"], conv.arrays["a"][trace.sample])
    # relu: a = max(Z, 0), and δ = ∂L/∂a · [Z > 0]: zero wherever Z is not positive
    np.testing.assert_allclose(conv.arrays["a"], np.maximum(conv.arrays["z"], 0))
    assert np.all(conv.arrays["delta"][conv.arrays["z"] <= 0] == 0)
    # the residual sum: Z = inner(a^[l−1]) + a^[l−1]; δ reaches the inner path's last block unchanged
    inner_out = trace.block("res1.batchnorm1").arrays["a"]
    np.testing.assert_allclose(res.arrays["z"], inner_out + res.arrays["a_prev"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trace.block("res1.batchnorm1").arrays["a"], inner_out)
    # the projection of the downsampling group is the group's own parameter
    assert [p.name for p in trace.block("down").params] == ["down.projection.weight", "down.projection.bias"]
    assert all(block.tensors["delta"].shape == block.tensors["a"].shape or block.delta_of == "z"
               for block in trace.blocks if "delta" in block.tensors)


def test_the_trace_is_summaries_only_unless_asked_and_a_normal_run_leaves_no_patch():
    trainer = Trainer(conv_project(), blobs())
    trainer.step()
    run = trainer.run()
    trace = next(e for e in run if isinstance(e, StepTrace))
    trainer.stop()
    list(run)
    conv = trace.blocks[0]
    assert conv.arrays == {} and all(p.arrays == {} for p in conv.params)
    stats = conv.tensors["a"]
    assert stats.counts.sum() == np.prod(stats.shape) and len(stats.edges) == len(stats.counts) + 1
    assert 0 <= stats.zeros <= 1 and stats.min <= stats.mean <= stats.max
    assert all("forward" not in vars(layer) for layer in trainer.network.layers)
    assert len(conv.maps["a"].shape) == 3


def test_tensor_stats():
    s = TensorStats.of(np.array([[0.0, 1.0], [2.0, np.nan]], np.float32), bins=4)
    assert s.shape == (2, 2) and (s.min, s.mean, s.max) == (0.0, 1.0, 2.0)
    assert s.zeros == 0.25 and s.nonfinite == 1 and s.counts.sum() == 3
    assert TensorStats.of(np.zeros(3)).zeros == 1.0


def test_run_control_step_lets_one_batch_through_then_holds():
    control = RunControl()
    control.step()
    assert control.hold() == 0.0 and control.take_step() and not control.take_step()
    assert control.paused
    control.resume()
    assert control.hold() == 0.0 and not control.take_step()
    control.stop()
    control.step()  # ignored once stopping
    assert not control._step


def test_the_torch_engine_steps_and_pauses_but_says_traces_need_the_numpy_engine():
    pytest.importorskip("torch")
    from netbuilder.core.step_trace import NEEDS_NUMPY
    from netbuilder.core.torch_engine import TorchTrainer

    trainer = TorchTrainer(mlp_project(), blobs(), device="cpu")
    _, (trace,) = step_once(trainer)
    assert trace.message == NEEDS_NUMPY and trace.blocks == [] and trace.batch == 1


def test_a_run_without_a_step_records_nothing(monkeypatch):
    from netbuilder.core import step_trace

    def refuse(*args, **kwargs):
        raise AssertionError("a normal batch must not be recorded")
    monkeypatch.setattr(step_trace, "StepRecorder", refuse)
    history = Trainer(mlp_project(epochs=1), blobs()).fit()
    assert history.status == "finished"
