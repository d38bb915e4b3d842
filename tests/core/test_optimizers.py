"""The optimisers against torch.optim, step by step, and their bookkeeping."""
from types import SimpleNamespace

import numpy as np
import pytest

from netbuilder.core.optimizers import SGD, Adam, Momentum, make_optimizer

SHAPES = {"conv1.weight": (4, 3, 3, 3), "conv1.bias": (4,), "dense.weight": (5, 7)}


def _problem(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    # A different gradient every step, as training would produce.
    grads = [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()} for _ in range(6)]
    return params, grads


def _torch_run(make, params, grads):
    import torch
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = make(torch, list(tp.values()))
    history = []
    for g in grads:
        for k, t in tp.items():
            t.grad = torch.tensor(g[k])
        opt.step()
        history.append({k: t.detach().numpy().copy() for k, t in tp.items()})
    return history


CASES = {
    "sgd": (lambda: SGD(0.1, weight_decay=0.01),
            lambda torch, p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01)),
    "momentum": (lambda: Momentum(0.05, momentum=0.9, weight_decay=0.02),
                 lambda torch, p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.02)),
    "nesterov": (lambda: Momentum(0.05, momentum=0.8, weight_decay=0.02, nesterov=True),
                 lambda torch, p: torch.optim.SGD(p, lr=0.05, momentum=0.8, weight_decay=0.02, nesterov=True)),
    "adam": (lambda: Adam(0.01, weight_decay=0.05),
             lambda torch, p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_matches_torch_over_several_steps(kind):
    ours, theirs = CASES[kind]
    params, grads = _problem()
    expected = _torch_run(theirs, params, grads)
    opt = ours()
    live = {k: v.copy() for k, v in params.items()}
    for step, g in enumerate(grads):
        opt.step(live, g)
        for k in live:
            assert live[k].dtype == np.float32
            np.testing.assert_allclose(live[k], expected[step][k], rtol=2e-6, atol=2e-6,
                                       err_msg=f"{kind}, step {step + 1}, {k}")
        # The updates actually move the parameters (the comparison above is not vacuous).
        assert not np.array_equal(live["dense.weight"], params["dense.weight"])


def test_updates_in_place_and_float64_stays_float64():
    params, grads = _problem(dtype=np.float64)
    arrays = {k: v for k, v in params.items()}
    ids = {k: id(v) for k, v in arrays.items()}
    opt = Adam(0.01)
    opt.step(arrays, grads[0])
    assert {k: id(v) for k, v in arrays.items()} == ids
    assert all(v.dtype == np.float64 for v in arrays.values())
    assert all(buf.dtype == np.float64 for s in opt.state.values() for buf in s.values())


def test_gradients_are_left_untouched():
    params, grads = _problem()
    before = {k: v.copy() for k, v in grads[0].items()}
    opt = Momentum(0.1, nesterov=True, weight_decay=0.1)
    opt.step(params, grads[0])
    opt.step(params, grads[0])
    for k in before:
        np.testing.assert_array_equal(grads[0][k], before[k])


def test_first_momentum_step_equals_plain_sgd():
    params, grads = _problem()
    a = {k: v.copy() for k, v in params.items()}
    b = {k: v.copy() for k, v in params.items()}
    SGD(0.1).step(a, grads[0])
    Momentum(0.1, momentum=0.9).step(b, grads[0])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_learning_rate_change_takes_effect_on_next_step():
    params = {"w": np.ones(3, np.float32)}
    g = {"w": np.ones(3, np.float32)}
    opt = SGD(0.5)
    opt.step(params, g)
    opt.lr = 0.25
    opt.step(params, g)
    np.testing.assert_allclose(params["w"], 1 - 0.5 - 0.25)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "0.1", None, True])
def test_bad_learning_rate_is_rejected_with_value(bad):
    with pytest.raises(ValueError, match="learning rate") as info:
        SGD(0.1).lr = bad
    assert repr(bad) in str(info.value)


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="momentum must be >= 0, got -0.5"):
        Momentum(0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="weight_decay"):
        Adam(0.1, weight_decay=-1)
    with pytest.raises(ValueError, match="beta2 must be < 1, got 1.0"):
        Adam(0.1, betas=(0.9, 1.0))


def test_shape_mismatch_names_the_parameter():
    opt = SGD(0.1)
    with pytest.raises(ValueError, match=r"gradient w has shape \(2,\), its parameter \(3,\)"):
        opt.step({"w": np.zeros(3, np.float32)}, {"w": np.zeros(2, np.float32)})


@pytest.mark.parametrize("kind", ["momentum", "nesterov", "adam"])
def test_state_dict_round_trip_continues_identically(kind):
    ours, _ = CASES[kind]
    params, grads = _problem()
    a = {k: v.copy() for k, v in params.items()}
    opt_a = ours()
    for g in grads[:3]:
        opt_a.step(a, g)
    saved = opt_a.state_dict()
    b = {k: v.copy() for k, v in a.items()}
    opt_b = ours()
    opt_b.load_state_dict(saved)
    assert opt_b.steps == 3
    # Mutating the saved copy must not reach either optimiser.
    for v in saved.values():
        v[...] = 0
    for g in grads[3:]:
        opt_a.step(a, g)
        opt_b.step(b, g)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_load_state_dict_rejects_foreign_buffers():
    adam_state = Adam(0.1)
    params, grads = _problem()
    adam_state.step(params, grads[0])
    with pytest.raises(ValueError, match="'exp_avg/conv1.weight' is not one of this Momentum's buffers"):
        Momentum(0.1).load_state_dict(adam_state.state_dict())
    with pytest.raises(ValueError, match="no 'steps'"):
        Adam(0.1).load_state_dict({})


@pytest.mark.parametrize("name,cls,nesterov", [("sgd", SGD, None), ("momentum", Momentum, False),
                                               ("nesterov", Momentum, True), ("adam", Adam, None)])
def test_make_optimizer_reads_settings(name, cls, nesterov):
    settings = SimpleNamespace(optimizer=name, learning_rate=0.02, momentum=0.7, weight_decay=0.001)
    opt = make_optimizer(settings)
    assert type(opt) is cls
    assert opt.lr == 0.02 and opt.weight_decay == 0.001
    if nesterov is not None:
        assert opt.nesterov is nesterov and opt.momentum == 0.7


def test_make_optimizer_unknown_kind():
    settings = SimpleNamespace(optimizer="rmsprop", learning_rate=0.1, momentum=0.9, weight_decay=0.0)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer(settings)
