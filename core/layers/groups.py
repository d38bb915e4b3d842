"""Composite layers for residual (ResNet) and branching (Inception) networks: groups of layers
that run as one, so a gradient can flow along more than one path and be summed where they meet.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from netbuilder.core.layers.activation import blockwise
from netbuilder.core.layers.base import Layer

MERGES = ("concat", "add")


def walk(layer: Layer, prefix: str = "") -> Iterator[tuple[str, Layer]]:
    """Every layer inside ``layer`` (not itself), depth first, as ("inner.0", conv), ("inner.0.path1.0", ...)."""
    for name, child in layer.children() if hasattr(layer, "children") else ():
        yield prefix + name, child
        yield from walk(child, f"{prefix}{name}.")


def added(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b in a new array laid out as ``a``, cut in blocks run on the layers' threads: a residual's
    sum and its input gradient's are passes over whole feature maps, one thread's work otherwise."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return a + b  # broadcasting or a type promotion: numpy's own rules
    out = np.empty_like(a)
    blockwise(lambda o, x, y: np.add(x, y, out=o), out, a, b)
    return out


def _layers(what: str, layers) -> list[Layer]:
    layers = list(layers)
    for layer in layers:
        if not isinstance(layer, Layer):
            raise TypeError(f"{what} must hold layers, got {layer!r}")
        if hasattr(layer, "needs_input_grad"):
            layer.needs_input_grad = True  # the gradient goes on to the layer before, or to the other path
    return layers


def _forward(layers: list[Layer], x: np.ndarray, training: bool) -> np.ndarray:
    """The plain run of an inner pipeline: what a group's forward does unless told otherwise."""
    for layer in layers:
        x = layer.forward(x, training)
    return x


def forward_observed(layers: list[Layer], x: np.ndarray, observe) -> np.ndarray:
    """``layers`` in inference mode, calling ``observe(layer, output)`` after each one, the layers
    inside groups too (a group's inner layers before the group itself, as their outputs are made).

    The probe's path only: a group runs its inner pipelines with this runner instead of the plain
    loop, so its sum or merge is the one training computes.
    """
    def run(layers: list[Layer], x: np.ndarray, training: bool) -> np.ndarray:
        for layer in layers:
            x = layer.forward(x, training, run) if isinstance(layer, _Group) else layer.forward(x, training)
            observe(layer, x)
        return x
    return run(layers, x, False)


def _backward(layers: list[Layer], grad: np.ndarray, where: str) -> np.ndarray:
    """δ back through ``layers`` in reverse: each layer turns ∂L/∂(its output) into ∂L/∂(its input)."""
    for k in reversed(range(len(layers))):
        grad = layers[k].backward(grad)
        if grad is None:
            raise RuntimeError(f"{where}.{k} returned no input gradient: inside a group needs_input_grad must be True")
    return grad


class _Group(Layer):
    """What Residual and Branches share: no params of their own, children named for the network.

    ``forward(x, training, run)`` runs each inner pipeline as ``run(layers, x, training)``: the
    plain loop by default; a probe passes a runner that also keeps each inner block's output
    (``Network.forward_stages``), so the group's own arithmetic (sum, merge) is written once and
    training pays nothing for it.
    """

    def __init__(self) -> None:
        super().__init__()
        # The network sets this False on its first layer with weights (a group may be it): then
        # backward still fills every child's grads but returns None.
        self.needs_input_grad = True
        self._saved = None  # from the last training forward: the output shape(s) backward checks

    def children(self) -> list[tuple[str, Layer]]:
        raise NotImplementedError

    def _check_unique(self) -> None:
        seen: dict[int, str] = {}
        for name, layer in walk(self):
            if id(layer) in seen:
                raise ValueError(f"{type(self).__name__}: one layer is used twice ({seen[id(layer)]} and {name}); "
                                 "each place needs its own layer, as it keeps its own forward state")
            seen[id(layer)] = name

    def _saved_or_raise(self):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward with training=True first")
        return self._saved


class Residual(_Group):
    """y = activation(inner(x) + skip(x)), skip(x) = projection(x) when given, else x (ResNet's block).

    ``inner`` runs in order; ``projection`` (e.g. a 1x1 Conv2D with a stride) makes the skip's
    shape match when the inner path changes channels or size; ``activation`` follows the sum.
    """

    def __init__(self, inner: list[Layer], projection: Layer | None = None, activation: Layer | None = None):
        super().__init__()
        self.inner = _layers("Residual inner", inner)
        self.projection = _layers("Residual projection", [projection])[0] if projection is not None else None
        self.activation = _layers("Residual activation", [activation])[0] if activation is not None else None
        self._check_unique()

    def children(self) -> list[tuple[str, Layer]]:
        named = [(f"inner.{k}", layer) for k, layer in enumerate(self.inner)]
        named += [(name, layer) for name, layer in (("projection", self.projection), ("activation", self.activation))
                  if layer is not None]
        return named

    def __repr__(self) -> str:
        return f"Residual(inner={self.inner!r}, projection={self.projection!r}, activation={self.activation!r})"

    def forward(self, x: np.ndarray, training: bool = False, run=_forward) -> np.ndarray:
        x = np.asarray(x)
        h = run(self.inner, x, training)
        s = self.projection.forward(x, training) if self.projection is not None else x
        if h.shape != s.shape:
            raise ValueError(f"Residual: the inner path gives shape {h.shape} but the skip path gives {s.shape}; "
                             "a projection (e.g. a 1x1 Conv2D with the inner path's stride) must make them agree")
        z = added(h, s)
        y = self.activation.forward(z, training) if self.activation is not None else z
        if training:
            self._saved = y.shape
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray | None:
        shape = self._saved_or_raise()
        if grad_out.shape != shape:
            raise ValueError(f"Residual.backward expects a gradient of shape {shape}, got {grad_out.shape}")
        # Z = inner(x) + skip(x), y = act(Z): δ = ∂L/∂Z comes back through the activation, and
        # reaches both terms unchanged (∂Z/∂inner = ∂Z/∂skip = 1).
        delta = self.activation.backward(grad_out) if self.activation is not None else grad_out
        d_inner = _backward(self.inner, delta, "Residual inner")
        # identity skip: ∂skip/∂x = 1, so δ itself; with a projection P·x + b, its backward gives Pᵀ·δ
        d_skip = _backward([self.projection], delta, "Residual projection") if self.projection is not None else delta
        # x feeds both paths: the skip adds its gradient to the inner one (a new array: either may
        # be a view of grad_out or of a child's buffer)
        return added(d_inner, d_skip) if self.needs_input_grad else None


class Branches(_Group):
    """Every path runs on the same input; the outputs are joined along axis 1 ("concat": channels, or
    features of 2-D outputs) or summed ("add"), as Inception's branches. ``[]`` is the identity path.
    """

    def __init__(self, paths: list[list[Layer]], merge: str):
        super().__init__()
        if merge not in MERGES:
            raise ValueError(f"Branches merge must be one of {', '.join(MERGES)}, got {merge!r}")
        if isinstance(paths, Layer) or not len(paths):
            raise ValueError("Branches needs a list of paths, each a list of layers ([] for the identity)")
        self.merge = merge
        self.paths = [_layers(f"Branches path{k}", path) for k, path in enumerate(paths, 1)]
        self._check_unique()

    def children(self) -> list[tuple[str, Layer]]:
        return [(f"path{p}.{k}", layer) for p, path in enumerate(self.paths, 1) for k, layer in enumerate(path)]

    def __repr__(self) -> str:
        return f"Branches({self.paths!r}, merge={self.merge!r})"

    def _mismatch(self, ys: list[np.ndarray], need: str) -> ValueError:
        got = ", ".join(f"path{p} {y.shape}" for p, y in enumerate(ys, 1))
        return ValueError(f"Branches {self.merge!r} needs {need}; got {got}")

    def forward(self, x: np.ndarray, training: bool = False, run=_forward) -> np.ndarray:
        x = np.asarray(x)
        ys = [run(path, x, training) for path in self.paths]
        if self.merge == "add":
            if any(y.shape != ys[0].shape for y in ys):
                raise self._mismatch(ys, "outputs of one shape to add")
            out = ys[0] if len(ys) == 1 else ys[0] + ys[1]
            for y in ys[2:]:
                out += y  # out is this sum's own array
        else:
            if any(y.ndim != ys[0].ndim or y.ndim < 2 or y.shape[:1] + y.shape[2:] != ys[0].shape[:1] + ys[0].shape[2:]
                   for y in ys):
                raise self._mismatch(ys, "outputs that differ in axis 1 only to concatenate")
            shape = (ys[0].shape[0], sum(y.shape[1] for y in ys)) + ys[0].shape[2:]
            # in the first output's memory layout (a convolution's batch-innermost one stays so)
            out = np.empty_like(ys[0], dtype=np.result_type(*ys), shape=shape)
            start = 0
            for y in ys:
                out[:, start:start + y.shape[1]] = y
                start += y.shape[1]
        if training:
            self._saved = (out.shape, [y.shape[1] for y in ys])
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray | None:
        shape, sizes = self._saved_or_raise()
        if grad_out.shape != shape:
            raise ValueError(f"Branches.backward expects a gradient of shape {shape}, got {grad_out.shape}")
        if self.merge == "add":  # Z = Σ path_k(x): ∂Z/∂path_k = 1, every path gets δ itself
            deltas = [grad_out] * len(self.paths)
        else:  # Z = [path_1(x), path_2(x), ...] along axis 1: each path gets its own slice of δ
            deltas = np.split(grad_out, np.cumsum(sizes)[:-1], axis=1)
        dxs = [_backward(path, d, f"Branches path{p}") for p, (path, d) in enumerate(zip(self.paths, deltas), 1)]
        if not self.needs_input_grad:
            return None
        # x feeds every path: ∂L/∂x is the sum of the paths' input gradients (a new array, as in Residual)
        dx = dxs[0] if len(dxs) == 1 else dxs[0] + dxs[1]
        for d in dxs[2:]:
            dx += d
        return dx
