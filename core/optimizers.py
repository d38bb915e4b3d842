"""Gradient-descent optimisers with PyTorch's update rules: SGD, momentum (optionally Nesterov), Adam.

Each rule matches ``torch.optim.SGD(lr, momentum, nesterov=..., weight_decay=...)`` or
``torch.optim.Adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=...)`` step for step. Weight
decay is the coupled (L2) kind: ``weight_decay * param`` is added to the gradient before the rule.

Updates happen in place in the parameters' own dtype (float32 stays float32). Per-parameter
state (moment buffers) is allocated on the first step; after that a step allocates nothing: the
temporaries live in a few flat work buffers shared by all parameters.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


class Optimizer:
    """The shared step loop; a subclass supplies the per-parameter rule in ``_update``.

    ``lr`` may be changed between steps (the GUI does so while training runs).
    ``weight_decay`` is coupled L2: the rule sees ``grad + weight_decay * param``.
    """

    slots: tuple[str, ...] = ()  # names of the per-parameter buffers the rule keeps

    def __init__(self, lr: float, weight_decay: float = 0.0):
        self.lr = lr
        self.weight_decay = _check(weight_decay, "weight_decay", minimum=0.0)
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._work: dict[tuple[np.dtype, int], np.ndarray] = {}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check(value, "learning rate", minimum=0.0, strict=True)

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Update every array of ``params`` in place from the same-named array of ``grads``."""
        self.steps += 1
        self._step_lr = self.lr  # one rate for the whole step, even if another thread changes lr
        self._begin_step()
        wd = self.weight_decay
        for name, p in params.items():
            g = grads[name]
            if g.shape != p.shape:
                raise ValueError(f"gradient {name} has shape {g.shape}, its parameter {p.shape}")
            state = self.state.get(name)
            if state is None:
                state = self.state[name] = {}
            d = self._buffer(p, 0)
            if wd:
                np.multiply(p, wd, out=d)
                d += g
            else:
                np.copyto(d, g)
            self._update(p, d, state)

    def _begin_step(self) -> None:
        """Per-step scalars (e.g. Adam's bias corrections), once before the parameter loop."""

    def _update(self, p: np.ndarray, d: np.ndarray, state: dict[str, np.ndarray]) -> None:
        """Apply the rule to ``p`` given the decayed gradient ``d`` (a work buffer it may overwrite)."""
        raise NotImplementedError

    def _buffer(self, like: np.ndarray, k: int) -> np.ndarray:
        """Work buffer ``k`` shaped like ``like``: a view of a flat array reused by every parameter."""
        key = (like.dtype, k)
        flat = self._work.get(key)
        if flat is None or flat.size < like.size:
            flat = self._work[key] = np.empty(like.size, like.dtype)
        return flat[: like.size].reshape(like.shape)

    # --- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the step count and every moment buffer, flat and npz-ready.

        Keys: ``"steps"`` and ``"<slot>/<parameter name>"`` (e.g. ``"exp_avg/conv1.weight"``).
        """
        out = {"steps": np.array(self.steps, np.int64)}
        for name, state in self.state.items():
            for slot, buf in state.items():
                out[f"{slot}/{name}"] = buf.copy()
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what ``state_dict`` returned (from an optimiser of the same kind)."""
        if "steps" not in state:
            raise ValueError("optimizer state has no 'steps' entry")
        buffers: dict[str, dict[str, np.ndarray]] = {}
        for key, value in state.items():
            if key == "steps":
                continue
            slot, sep, name = key.partition("/")
            if not sep or slot not in self.slots:
                raise ValueError(f"optimizer state entry {key!r} is not one of this "
                                 f"{type(self).__name__}'s buffers ({', '.join(self.slots) or 'none'})")
            buffers.setdefault(name, {})[slot] = np.array(value, copy=True)
        self.steps = int(state["steps"])
        self.state = buffers

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr:g}, weight_decay={self.weight_decay:g})"


class SGD(Optimizer):
    """Plain gradient descent: ``p -= lr * d``."""

    def _update(self, p, d, state):
        d *= self._step_lr
        p -= d


class Momentum(Optimizer):
    """SGD with momentum as torch does it (dampening 0).

    ``buf = d`` on the first step, then ``buf = momentum * buf + d``; the step direction is
    ``buf``, or ``d + momentum * buf`` with ``nesterov=True``.
    """

    slots = ("momentum_buffer",)

    def __init__(self, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, nesterov: bool = False):
        super().__init__(lr, weight_decay)
        self.momentum = _check(momentum, "momentum", minimum=0.0)
        self.nesterov = bool(nesterov)

    def _update(self, p, d, state):
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = d.copy()
        else:
            buf *= self.momentum
            buf += d
        if self.nesterov:
            t = self._buffer(p, 1)
            np.multiply(buf, self.momentum, out=t)
            d += t
        else:
            np.copyto(d, buf)
        d *= self._step_lr
        p -= d

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(lr={self.lr:g}, momentum={self.momentum:g}, "
                f"weight_decay={self.weight_decay:g}, nesterov={self.nesterov})")


class Adam(Optimizer):
    """Adam with bias correction, in torch's operation order (``eps`` added after the sqrt)."""

    slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        b1, b2 = betas
        self.beta1 = _check(b1, "beta1", minimum=0.0, maximum=1.0)
        self.beta2 = _check(b2, "beta2", minimum=0.0, maximum=1.0)
        self.eps = _check(eps, "eps", minimum=0.0)

    def _begin_step(self):
        t = self.steps
        self._step_size = self._step_lr / (1.0 - self.beta1 ** t)
        self._bc2_sqrt = math.sqrt(1.0 - self.beta2 ** t)

    def _update(self, p, d, state):
        m = state.get("exp_avg")
        if m is None:
            m = state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        v = state["exp_avg_sq"]
        t = self._buffer(p, 1)
        # m = lerp(m, d, 1 - beta1) = m + (1 - beta1) * (d - m)
        np.subtract(d, m, out=t)
        t *= 1.0 - self.beta1
        m += t
        # v = beta2 * v + (1 - beta2) * d * d
        v *= self.beta2
        np.multiply(d, d, out=t)
        t *= 1.0 - self.beta2
        v += t
        # p -= step_size * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
        np.sqrt(v, out=t)
        t /= self._bc2_sqrt
        t += self.eps
        np.divide(m, t, out=t)
        t *= self._step_size
        p -= t

    def __repr__(self) -> str:
        return (f"Adam(lr={self.lr:g}, betas=({self.beta1:g}, {self.beta2:g}), eps={self.eps:g}, "
                f"weight_decay={self.weight_decay:g})")


def make_optimizer(settings) -> Optimizer:
    """The optimiser a project's ``TrainingSettings`` names (sgd | momentum | nesterov | adam)."""
    kind = settings.optimizer
    lr, wd = settings.learning_rate, settings.weight_decay
    if kind == "sgd":
        return SGD(lr, weight_decay=wd)
    if kind in ("momentum", "nesterov"):
        return Momentum(lr, momentum=settings.momentum, weight_decay=wd, nesterov=kind == "nesterov")
    if kind == "adam":
        return Adam(lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {kind!r}; choose one of sgd, momentum, nesterov, adam")


def _check(value, what: str, minimum: float | None = None, maximum: float | None = None,
           strict: bool = False) -> float:
    """``value`` as a float, or ValueError naming ``what`` if it is not a finite number in range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {value!r}")
    if minimum is not None and (v < minimum or (strict and v == minimum)):
        raise ValueError(f"{what} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    if maximum is not None and v >= maximum:
        raise ValueError(f"{what} must be < {maximum:g}, got {value!r}")
    return v
