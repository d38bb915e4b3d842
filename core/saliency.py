"""Where a network looked: saliency maps for one image, from the engine's own backward pass.

Two maps, both ``(H, W)`` float32 in [0, 1] at the input's size:

- ``input_gradient``: |∂ score / ∂ x|, the largest over the input's channels (Simonyan et al.,
  2013). Bright pixels are those whose change would change the class's score the most.
- ``grad_cam``: Grad-CAM (Selvaraju et al., 2017) on the last convolution block (a block inside
  a group counts; its output after its activation): each of its maps weighted by the mean
  gradient of the score over that map, summed, negative parts cut (ReLU), upsampled bilinearly
  to the input size. Coarse (the convolution's resolution) but class-specific.

The *score* is the class's pre-softmax (or pre-sigmoid) output, its logit, not its probability:
the probability's gradient vanishes as the network grows confident (p ≈ 1 makes ∂p/∂x ≈ 0 for
the very image it is surest of), and it mixes in every other class (∂p_k = p_k (∂z_k − Σ p_j ∂z_j)),
so the logit's gradient is the one that says what speaks for *this* class. A network ending in
one sigmoid unit (binary) has score z for class 1 and −z for class 0; a network without a final
softmax or sigmoid uses its output as it is.

Both run the network forward and backward in inference mode: dropout passes everything,
batch normalisation uses its running statistics and updates nothing; weights, buffers, gradients
and every layer's saved state are as they were afterwards. The network must not be trained or
run by another thread meanwhile (the window uses its own copy, ``trained_network()``); calls here
take one lock among themselves.

Preprocessing is not done here: ``x`` is exactly what the network sees, (C, H, W) at its input
shape, before the network's own normalisation (which the gradient goes through).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from netbuilder.core.layers import Activation, Conv2D, Dropout, Layer
from netbuilder.core.layers.batchnorm import BatchNorm
from netbuilder.core.layers.groups import walk
from netbuilder.core.layers.parallel import holds_blas_single_threaded

_LOCK = threading.Lock()
_SQUASHING = ("softmax", "sigmoid")  # final activations whose input is the score


@dataclass
class Saliency:
    """Both maps for one image and class, from one backward pass (``explain``)."""

    class_index: int
    score: float  # the class's logit (see the module)
    input_gradient: np.ndarray  # (H, W) float32 in [0, 1]
    grad_cam: np.ndarray | None  # (H, W) float32 in [0, 1]; None without a convolution
    cam_block: str | None  # the path of the convolution block Grad-CAM used ("conv2", "res1.conv1")


def input_gradient(network, x: np.ndarray, class_index: int, raw: bool = False) -> np.ndarray:
    """|∂ score / ∂ x| max over channels, (H, W). Scaled to [0, 1] by its largest value (float32),
    or with ``raw=True`` unscaled, in the network's dtype: the gradient itself, to check."""
    return _explain(network, x, class_index, raw=raw, cam=False).input_gradient


def grad_cam(network, x: np.ndarray, class_index: int, raw: bool = False) -> np.ndarray:
    """Grad-CAM on the last convolution, upsampled to (H, W), in [0, 1] (``raw=True``: unscaled).

    ValueError when the network has no convolution block."""
    result = _explain(network, x, class_index, raw=raw, cam=True)
    if result.grad_cam is None:
        raise ValueError("Grad-CAM needs a convolution block, and this network has none")
    return result.grad_cam


def explain(network, x: np.ndarray, class_index: int | None = None) -> Saliency:
    """Both maps in one pass; ``class_index`` None: the network's top class for ``x``."""
    if class_index is None:
        class_index = int(network.classify(network.forward(_batch(network, x)))[0])
    return _explain(network, x, class_index, raw=False, cam=True)


def class_score(network, x: np.ndarray, class_index: int) -> float:
    """The score that is differentiated (the class's logit), in inference mode: for checks."""
    z, _ = _logits(network, network._prepare(_batch(network, x)), training=False)
    return float(_seed(z, class_index).ravel() @ z.ravel())


def last_convolution(network):
    """The stage of the last convolution block, groups' inner blocks included, or None."""
    found = None
    for stage in network.walk_stages():
        if any(isinstance(layer, Conv2D) for layer in stage.layers):
            found = stage
    return found


# --- the pass ------------------------------------------------------------------------------------
def _batch(network, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=network.dtype)
    shape = tuple(network.inference.input_shape)
    if len(shape) != 3:
        raise ValueError(f"saliency maps need an image input (channels, height, width), not {shape}")
    if x.shape == shape:
        x = x[None]
    if x.shape != (1,) + shape:
        raise ValueError(f"saliency takes one image of shape {shape}, got {x.shape}")
    return x


def _score_layers(network) -> list[Layer]:
    last = network.layers[-1]
    squashed = isinstance(last, Activation) and last.name in _SQUASHING
    return network.layers[:-1] if squashed else network.layers


def _logits(network, x: np.ndarray, training: bool) -> tuple[np.ndarray, tuple]:
    for layer in _score_layers(network):
        x = layer.forward(x, training)
    return x.reshape(1, -1), x.shape


def _seed(z: np.ndarray, class_index: int) -> np.ndarray:
    """∂ score / ∂ z: one-hot at the class; one binary unit: +1 for class 1, −1 for class 0."""
    k = int(class_index)
    seed = np.zeros_like(z)
    if z.shape[1] == 1:
        if k not in (0, 1):
            raise ValueError(f"a network with one output has classes 0 and 1, not {k}")
        seed[0, 0] = 1 if k == 1 else -1
    else:
        if not 0 <= k < z.shape[1]:
            raise ValueError(f"class {k} is not one of the network's {z.shape[1]} outputs")
        seed[0, k] = 1
    return seed


def _all_layers(network) -> list[Layer]:
    out = []
    for layer in network.layers:
        out.append(layer)
        out.extend(child for _, child in walk(layer))
    return out


@contextmanager
def _inference_backward(network):
    """Training forwards (which keep what backward needs) that behave as inference, and every
    layer's state put back afterwards."""
    saved = []
    for layer in _all_layers(network):
        state = dict(vars(layer))
        grads = {k: np.array(v, copy=True) for k, v in layer.grads.items()}
        saved.append((layer, state, grads))
        if isinstance(layer, BatchNorm):
            layer.frozen = True  # running statistics normalise, and are not moved
        if isinstance(layer, Dropout):  # an instance attribute, dropped again below
            layer.forward = lambda x, training=False: x
            layer.backward = lambda grad: grad
        if hasattr(layer, "needs_input_grad"):
            layer.needs_input_grad = True
    try:
        yield
    finally:
        for layer, state, grads in saved:
            vars(layer).clear()
            vars(layer).update(state)
            for k, v in grads.items():  # in case a backward wrote into the arrays in place
                state["grads"][k][...] = v


def _capture(layer: Layer, store: dict) -> None:
    """Record ``layer``'s output and the gradient that reaches it (instance attributes, undone
    with the rest of its state)."""
    forward, backward = layer.forward, layer.backward

    def observed_forward(x, training=False):
        store["a"] = y = forward(x, training)
        return y

    def observed_backward(grad):
        store["g"] = grad
        return backward(grad)
    layer.forward, layer.backward = observed_forward, observed_backward


@holds_blas_single_threaded
def _explain(network, x: np.ndarray, class_index: int, raw: bool, cam: bool) -> Saliency:
    x = _batch(network, x)
    with _LOCK, np.errstate(over="ignore", invalid="ignore", divide="ignore"), _inference_backward(network):
        stage = last_convolution(network) if cam else None
        store: dict = {}
        if stage is not None:
            _capture(stage.layers[-1], store)
        z, shape = _logits(network, network._prepare(x), training=True)
        seed = _seed(z, class_index)
        grad = seed.reshape(shape)
        for layer in reversed(_score_layers(network)):
            grad = layer.backward(grad)
        score = float(seed.ravel() @ z.ravel())
        if network._scale is not None:  # through the normalisation: d score / d the raw input
            grad = grad * network._scale
        g = np.abs(grad[0]).max(axis=0)
        heat = None
        if stage is not None:
            a, da = store["a"][0], store["g"][0]  # (F, h, w)
            weights = da.mean(axis=(1, 2))
            heat = np.maximum(np.tensordot(weights, a, axes=1), 0)
            heat = _upsample(heat, g.shape)
    if raw:
        return Saliency(int(class_index), score, g, heat, stage.path if stage is not None else None)
    return Saliency(int(class_index), score, _unit(g), None if heat is None else _unit(heat),
                    stage.path if stage is not None else None)


def _unit(a: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1] by the largest value (all zeros stay zeros; not finite becomes 0)."""
    a = np.nan_to_num(np.asarray(a, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(a.max(initial=0.0))
    return (a / top).astype(np.float32) if top > 0 else np.zeros(a.shape, np.float32)


def _upsample(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A coarse (h, w) map bilinearly to ``size``, pixel centres aligned (a heat map, not an
    image: images are resized where the data is read, never here)."""
    h, w = a.shape
    H, W = size
    rows = np.clip((np.arange(H) + 0.5) * h / H - 0.5, 0, h - 1)
    cols = np.clip((np.arange(W) + 0.5) * w / W - 0.5, 0, w - 1)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = a[r0][:, c0] * (1 - fc) + a[r0][:, c1] * fc
    bottom = a[r1][:, c0] * (1 - fc) + a[r1][:, c1] * fc
    return top * (1 - fr) + bottom * fr
