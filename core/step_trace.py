"""One training step, recorded block by block in the notation of the classic backpropagation derivation.

For every block l (the blocks inside groups too, named by path: "res1.conv1"):

- ``a_prev`` a^[l−1], the block's input;
- ``z`` Z^[l], the pre-activation: W^[l] a^[l−1] + b^[l] for a convolution or a dense block (the
  convolution's ∗ for W·), the normalised and scaled input of a batchnorm, inner(a) + skip(a) of a
  residual group; None for a block without one (pooling, flatten, dropout, an activation block);
- ``a`` a^[l] = g(Z^[l]), the block's output;
- ``delta`` δ^[l] = ∂L/∂Z^[l], the error term; for a block without Z it is ∂L/∂a^[l] (``delta_of``
  says which). With softmax and cross-entropy fused, δ of the last block is (p − y)/N;
- per parameter (``params``): W before the step, ∂L/∂W, and the update the optimiser applied,
  ΔW = W_after − W_before, with ‖ΔW‖/‖W‖.

``StepRecorder`` instruments the layers of a network for the one step it wraps (the layers' own
``forward``/``backward`` are shadowed on the instances and put back after; a convolution or dense
layer that applies its relu itself is asked for its Z and δ): a normal step pays nothing.
Everything handed out is plain data (dataclasses of numbers and numpy copies), safe to give to
another thread. ``Trainer`` records the step a ``RunControl.step()`` lets through and
yields the ``StepTrace`` right after that batch's ``BatchEnd``.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from netbuilder.core.layers import Activation
from netbuilder.core.layers.groups import walk

HISTOGRAM_BINS = 30
NEEDS_NUMPY = "Step traces need the numpy engine"

# the rows of a block, first to last, with their symbol in the derivation's notation
ROWS = (("a_prev", "a^[l−1]"), ("z", "Z^[l]"), ("a", "a^[l]"), ("delta", "δ^[l]"))


@dataclass(frozen=True)
class TensorStats:
    """Shape, range, mean, share of zeros, L2 norm and a histogram of one array (finite values only;
    ``nonfinite`` counts the others). ``counts``/``edges`` as ``np.histogram`` gives them."""

    shape: tuple[int, ...]
    min: float
    mean: float
    max: float
    zeros: float
    norm: float
    counts: np.ndarray
    edges: np.ndarray
    nonfinite: int = 0

    @classmethod
    def of(cls, array: np.ndarray, bins: int = HISTOGRAM_BINS) -> TensorStats:
        a = np.asarray(array)
        flat = a.reshape(-1).astype(np.float64, copy=False)
        finite = flat[np.isfinite(flat)]
        size = max(flat.size, 1)
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            counts, edges = np.histogram(finite, bins=bins, range=(lo, hi) if hi > lo else (lo - 0.5, hi + 0.5))
            mean, norm = float(finite.mean()), float(np.sqrt(np.dot(finite, finite)))
        else:
            lo = hi = mean = norm = math.nan
            counts, edges = np.zeros(bins, np.int64), np.linspace(0.0, 1.0, bins + 1)
        return cls(tuple(int(d) for d in a.shape), lo, mean, hi, float(np.count_nonzero(flat == 0)) / size, norm,
                   counts.astype(np.int64), edges, int(flat.size - finite.size))


@dataclass(frozen=True)
class ParamTrace:
    """One parameter of a block: ``weight`` W^[l] before the step, ``grad`` ∂L/∂W^[l], ``update`` ΔW,
    ``ratio`` ‖ΔW‖/‖W‖ (inf when W was all zeros and moved, 0 when neither). ``arrays`` holds full
    copies ("weight", "grad", "update") only when the recorder was asked to keep them."""

    name: str
    weight: TensorStats
    grad: TensorStats
    update: TensorStats
    ratio: float
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockTrace:
    """One block in the traced step. ``tensors`` maps "a_prev", "z", "a", "delta" to their stats (a
    key is missing when the block has no such value, e.g. no "z" for pooling, no "delta" before the
    first block with weights); ``maps`` the same keys to the chosen sample's (C, H, W) copies, for
    the values that are feature maps; ``formula`` says how Z (or a) is made from a^[l−1];
    ``depth`` is how many groups the block is inside. ``arrays`` holds the whole batch's copies only
    when the recorder was asked to keep them."""

    path: str
    kind: str
    depth: int
    formula: str
    delta_of: str  # "z": δ = ∂L/∂Z;  "a": δ = ∂L/∂a (the block has no pre-activation)
    tensors: dict[str, TensorStats]
    params: list[ParamTrace]
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class StepTrace:
    """One traced training step: where it happened, the batch's loss, the optimiser's step and
    rate, the chosen ``sample`` (index in the batch) and its ``label``, and every block, in the order
    the data goes through them (a group's inner blocks before the group's own output). ``message``
    says why there are no blocks (another engine)."""

    epoch: int
    batch: int
    batches_per_epoch: int
    loss: float
    batch_size: int
    learning_rate: float
    optimizer: str
    optimizer_steps: int
    sample: int = 0
    label: int = -1
    blocks: list[BlockTrace] = field(default_factory=list)
    message: str = ""

    def block(self, path: str) -> BlockTrace:
        """The block named ``path`` ("conv1", "res1.conv1"); KeyError if there is none."""
        for b in self.blocks:
            if b.path == path:
                return b
        raise KeyError(f"no block {path!r} in the step trace; there are {', '.join(b.path for b in self.blocks)}")


# --- recording -------------------------------------------------------------------------------
class _Seen:
    __slots__ = ("x", "y", "g_in", "g_out")

    def __init__(self) -> None:
        self.x = self.y = self.g_in = self.g_out = None


def _copy(a):
    return None if a is None else np.array(a, copy=True)


class StepRecorder:
    """``with StepRecorder(network): <one train_step and optimiser step>`` keeps every layer's input,
    output and gradients of that step (copies, made in the thread that entered only), and the
    parameters from before it; ``trace(...)`` then builds the ``StepTrace``."""

    def __init__(self, network, keep_arrays: bool = False) -> None:
        self.network = network
        self.keep_arrays = keep_arrays
        self.seen: dict[int, _Seen] = {}
        self.fused: dict[int, dict] = {}
        self._thread = threading.get_ident()
        self._patched: list = []
        self.before: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def __enter__(self) -> StepRecorder:
        self._thread = threading.get_ident()
        self.before = {name: p.copy() for name, p in self.network.parameters().items()}
        for top in self.network.layers:
            for layer in [top, *(child for _, child in walk(top))]:
                self._instrument(layer)
        return self

    def __exit__(self, *exc) -> None:
        for layer in self._patched:
            layer.__dict__.pop("forward", None)
            layer.__dict__.pop("backward", None)
            if getattr(layer, "record", None) is not None:
                layer.record = None
        self._patched.clear()

    def take_gradients(self) -> None:
        """Copy ∂L/∂W of every parameter: call after the backward pass (the trainer's step has run)."""
        self.grads = {name: g.copy() for name, g in self.network.gradients().items()}

    def _instrument(self, layer) -> None:
        if "forward" in layer.__dict__:  # one layer reached twice
            return
        seen = self.seen.setdefault(id(layer), _Seen())
        forward, backward = layer.forward, layer.backward
        mine = self._thread

        def traced_forward(x, training=False, *rest):
            y = forward(x, training, *rest)
            if threading.get_ident() == mine and seen.y is None:
                seen.x, seen.y = _copy(x), _copy(y)
            return y

        def traced_backward(g):
            dx = backward(g)
            if threading.get_ident() == mine and seen.g_in is None:
                seen.g_in, seen.g_out = _copy(g), _copy(dx)
            return dx

        layer.forward, layer.backward = traced_forward, traced_backward
        if getattr(layer, "fused_activation", None) is not None:
            # it applies its activation itself: it keeps Z and δ for the trace in this dict
            layer.record = self.fused[id(layer)] = {}
        self._patched.append(layer)

    # --- building the trace --------------------------------------------------------------------
    def trace(self, *, epoch: int, batch: int, batches_per_epoch: int, loss: float, optimizer, labels=None,
              sample: int = 0) -> StepTrace:
        """The ``StepTrace`` of the recorded step; ``sample`` picks the batch row whose maps are kept."""
        from netbuilder.core.blocks import KINDS

        params = self.network.parameters()
        if not self.grads:
            self.take_gradients()
        first = self.seen.get(id(self.network.layers[0])) if self.network.layers else None
        n = len(first.x) if first is not None and first.x is not None else 0
        sample = min(max(int(sample), 0), max(n - 1, 0))
        blocks: list[BlockTrace] = []

        def visit(stages, depth: int) -> None:
            for stage in stages:
                visit(KINDS[stage.info.kind].inner_stages(stage), depth + 1)
                blocks.append(self._block(stage, depth, params, sample))
        visit(self.network.stages, 0)
        label = int(labels[sample]) if labels is not None and len(labels) > sample else -1
        return StepTrace(epoch, batch, batches_per_epoch, float(loss), n, float(getattr(optimizer, "_step_lr",
                         optimizer.lr)), repr(optimizer), int(optimizer.steps), sample, label, blocks)

    def _block(self, stage, depth: int, params: dict, sample: int) -> BlockTrace:
        get = self.seen.get
        first, last = get(id(stage.layers[0])), get(id(stage.layers[-1]))
        values = {"a_prev": first.x if first else None, "a": last.y if last else None}
        z = delta = None
        param_layer = stage.param_layer
        group_act = getattr(stage.layers[0], "activation", None) if len(stage.layers) == 1 else None
        if param_layer is not None and get(id(param_layer)) is not None:
            s = get(id(param_layer))
            fused = self.fused.get(id(param_layer), {})  # Z and δ of a layer with its activation fused
            z, delta = fused.get("z", s.y), fused.get("delta", s.g_in)
            w = param_layer.params.get("weight")
            formula = ("Z = W ∗ a^[l−1] + b" if w is not None and w.ndim == 4 else
                       "Z = W a^[l−1] + b" if w is not None and w.ndim == 2 else
                       "Z = γ · (a^[l−1] − μ) / σ + β")
        elif isinstance(group_act, Activation) and get(id(group_act)) is not None:
            s = get(id(group_act))
            z, delta = s.x, s.g_out
            formula = "Z = inner(a^[l−1]) + skip(a^[l−1])"
        else:
            delta = last.g_in if last else None
            formula = f"a^[l] = {stage.info.kind}(a^[l−1])"
        if z is not None:
            act = stage.layers[-1] if isinstance(stage.layers[-1], Activation) and len(stage.layers) > 1 else group_act
            formula += f",  a^[l] = {act.name}(Z)" if isinstance(act, Activation) else ",  a^[l] = Z"
        values["z"], values["delta"] = z, delta
        tensors = {key: TensorStats.of(v) for key, v in values.items() if v is not None}
        tensors = {key: tensors[key] for key, _ in ROWS if key in tensors}
        maps = {key: np.array(v[sample], copy=True) for key, v in values.items()
                if v is not None and v.ndim == 4 and len(v) > sample}
        arrays = {key: v for key, v in values.items() if v is not None} if self.keep_arrays else {}
        own = {id(layer) for inner in _inner_stages(stage) for layer in _all_layers(inner)}
        traces = []
        for prefix, layer in stage.named:
            if id(layer) in own:
                continue
            for key in layer.params:
                name = f"{prefix}.{key}"
                traces.append(self._param(name, params[name]))
        return BlockTrace(stage.path, stage.info.kind, depth, formula, "z" if z is not None else "a",
                          tensors, traces, maps, arrays)

    def _param(self, name: str, now: np.ndarray) -> ParamTrace:
        before, grad = self.before[name], self.grads[name]
        update = now - before
        w_norm = float(np.sqrt(np.dot(before.reshape(-1).astype(np.float64), before.reshape(-1))))
        u_norm = float(np.sqrt(np.dot(update.reshape(-1).astype(np.float64), update.reshape(-1))))
        ratio = u_norm / w_norm if w_norm > 0 else (math.inf if u_norm > 0 else 0.0)
        arrays = {"weight": before, "grad": grad, "update": update} if self.keep_arrays else {}
        return ParamTrace(name, TensorStats.of(before), TensorStats.of(grad), TensorStats.of(update), ratio, arrays)


def _inner_stages(stage) -> list:
    from netbuilder.core.blocks import KINDS

    out = []
    for inner in KINDS[stage.info.kind].inner_stages(stage):
        out += [inner, *_inner_stages(inner)]
    return out


def _all_layers(stage) -> list:
    return [x for layer in stage.layers for x in [layer, *(child for _, child in walk(layer))]]


def unavailable(epoch: int, batch: int, batches_per_epoch: int, loss: float, batch_size: int, optimizer) -> StepTrace:
    """The trace another engine gives: where the step was, no blocks, and why."""
    return StepTrace(epoch, batch, batches_per_epoch, float(loss), batch_size, float(optimizer.lr),
                     repr(optimizer), int(optimizer.steps), message=NEEDS_NUMPY)
