"""numpy export: the engine's weights file and a generated ``predict.py`` that needs only numpy.

``predict.py`` holds the architecture as plain data and its own small forward pass (im2col
convolution, pooling, dense, activations, the input normalisation), written to repeat the
engine's float32 arithmetic step for step, so it runs a trained network anywhere numpy does:
``python predict.py weights.npz image.png`` or ``from predict import predict``. A batchnorm right
after a convolution or dense block with no activation of its own is folded into it
(``core.export.fold``): one entry, whose merged weights predict.py computes from the weights file
(which stays the engine's own) once it has loaded it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from netbuilder.core.blocks import KINDS, LEAKY_RELU_SLOPE
from netbuilder.core.export.fold import Folded, fold_stages
from netbuilder.core.export.verify import (
    ExportError,
    Staging,
    bundle_paths,
    class_names_of,
    compare,
    load_module,
    normalization_of,
    remove_if_empty,
    verification_samples,
)
from netbuilder.core.weights import WeightsError, save_weights

SCRIPT_FILE, WEIGHTS_FILE = "predict.py", "weights.npz"


def layer_specs(network) -> list[dict]:
    """The network as a list of plain dicts (what predict.py's LAYERS holds), one per block that
    does something at inference, each as its kind describes itself (``BlockKind.numpy``)."""
    return stage_specs(network.stages)


def stage_specs(stages) -> list[dict]:
    """predict.py's entries of ``stages`` (a group's inner ones nest inside its own entry)."""
    specs = []
    for stage in fold_stages(stages):
        spec = KINDS[stage.info.kind].numpy(stage)
        if spec is None:
            continue  # e.g. dropout: the identity at inference
        spec = {"name": stage.path, "kind": stage.info.kind, **spec}
        if isinstance(stage, Folded):  # the file holds both blocks' arrays; predict.py merges them
            stored = {f"{s.path}.{k}": v for s in (stage.linear, stage.norm) for layer in s.layers
                      for k, v in {**layer.params, **layer.buffers}.items()}
            spec["fold"] = {"linear": stage.linear.path, "batchnorm": stage.norm.path,
                            "eps": float(stage.norm.param_layer.eps),
                            "shapes": {k: tuple(v.shape) for k, v in stored.items()}}
        else:
            stored = {k: v for layer in stage.layers for k, v in {**layer.params, **layer.buffers}.items()}
            if stored:  # what load_weights checks the file for: parameters and buffers
                spec["shapes"] = {k: tuple(v.shape) for k, v in stored.items()}
        specs.append(spec)
    return specs


def _steps(network) -> str:
    """The step functions of the kinds the network uses (groups' inner ones and what their steps
    call too), and the table run() dispatches on."""
    kinds = [stage.info.kind for stage in network.walk_stages()]
    for kind in list(kinds):
        kinds += KINDS[kind].needs_steps
    kinds = [k for k in dict.fromkeys(kinds) if KINDS[k].numpy_step]
    source = "".join("\n" + KINDS[k].numpy_step.strip("\n") + "\n\n" for k in kinds)
    table = "STEPS = {" + ", ".join(f"{k!r}: step_{k}" for k in kinds) + "}"
    return source + "\n" + table + "\n"


def script_source(network, class_names: list[str] | None = None) -> str:
    """The text of ``predict.py`` for ``network``."""
    project = network.project
    stats = normalization_of(project)
    norm = None if stats is None else {"mean": [float(v) for v in stats[0]], "std": [float(v) for v in stats[1]]}
    names = class_names if class_names is not None else class_names_of(project)
    title = project.name.replace('"""', "'''").replace("\\", "/")
    values = {
        "__TITLE__": title,
        "__INPUT_SHAPE__": repr(tuple(int(v) for v in project.input_shape)),
        "__CLASS_NAMES__": repr(names),
        "__NORMALIZATION__": repr(norm),
        "__SLOPE__": repr(LEAKY_RELU_SLOPE),
        "__LAYERS__": "[\n" + "".join(f"    {spec!r},\n" for spec in layer_specs(network)) + "]",
        "__WEIGHTS_FILE__": WEIGHTS_FILE,
        "__STEPS__": _steps(network),
    }
    text = _TEMPLATE
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def export_numpy(network, path: str | os.PathLike, *, samples: np.ndarray | None = None,
                 sample_source: str | None = None, class_names: list[str] | None = None):
    """Write ``predict.py`` and ``weights.npz`` into folder ``path`` after checking them.

    The check imports the generated predict.py and runs it on the samples. The folder is created
    if missing (its parent must exist). Returns the ``VerificationReport``; raises ``ExportError``
    (nothing written) if a file cannot be written or predict.py's outputs differ from the engine's.
    """
    if samples is None:
        samples, sample_source = verification_samples(network.project)
    source = script_source(network, class_names)
    folder = Path(path)
    created = not folder.exists()
    dests = bundle_paths(folder, [SCRIPT_FILE, WEIGHTS_FILE], "numpy export")
    try:
        with Staging("numpy export") as staging:
            tmp_py, tmp_npz = staging.temp(dests[0]), staging.temp(dests[1])
            try:
                tmp_py.write_text(source, encoding="utf-8")
                save_weights(tmp_npz, network, network.project)
            except (OSError, WeightsError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise ExportError(f"cannot write the numpy export to {folder}: {reason}") from None
            module = load_module(tmp_py, "predict")
            weights = module.load_weights(tmp_npz)
            report = compare("numpy", network, samples, lambda x: module.predict(x, weights),
                             f"the generated {SCRIPT_FILE} (numpy {np.__version__})", dests, sample_source or "")
            if not report.passed:
                raise ExportError(f"the numpy export of {network.project.name!r} gives other answers than the "
                                  f"app; nothing was written\n{report}", report)
            staging.publish()
    except BaseException:
        if created:
            remove_if_empty(folder)
        raise
    return report


_TEMPLATE = r'''#!/usr/bin/env python3
"""__TITLE__: the trained network, run with nothing but numpy (generated by netbuilder).

Input: images of INPUT_SHAPE (channels, height, width) with pixels scaled to [0, 1]; the input
normalisation is applied here. Output: class probabilities, one row per image.

    python predict.py __WEIGHTS_FILE__ image.png [more images]   # PNG/JPEG need Pillow; .npy and PGM/PPM do not
    python predict.py image.png                           # uses __WEIGHTS_FILE__ next to this file

    from predict import predict
    probabilities = predict(x)   # x: (N, C, H, W) or (C, H, W) array of pixels in [0, 1]
"""
import sys
from pathlib import Path

import numpy as np

INPUT_SHAPE = __INPUT_SHAPE__
CLASS_NAMES = __CLASS_NAMES__
CLASS_TO_INDEX = {name: index for index, name in enumerate(CLASS_NAMES)}  # the output each class is
NORMALIZATION = __NORMALIZATION__  # per channel: (x - mean) / std, or None
LEAKY_RELU_SLOPE = __SLOPE__
# One entry per block, in order (dropout is left out: it does nothing at inference; a batchnorm right
# after a conv or dense block with no activation is folded into it: one entry "conv1+batchnorm1").
# pads are (top, bottom, left, right); conv weights are (filters, channels, kh, kw), dense (units, inputs).
LAYERS = __LAYERS__
WEIGHTS = Path(__file__).with_name("__WEIGHTS_FILE__")

_cache = {}


def load_weights(path=WEIGHTS):
    """{"<layer>.weight": array, ...} from a netbuilder weights file, checked against LAYERS."""
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = {k: data[k] for k in data.files if k != "__project__"}
    except Exception as exc:
        raise ValueError(f"{path}: not a readable netbuilder weights file (.npz): {exc}") from None
    problems = []
    for layer in entries(LAYERS):
        shapes = {f"{layer['name']}.{key}": shape for key, shape in layer.get("shapes", {}).items()}
        for name, shape in {**shapes, **layer.get("fold", {}).get("shapes", {})}.items():
            if name not in weights:
                problems.append(f"{name} {shape} is missing")
            elif tuple(weights[name].shape) != tuple(shape):
                problems.append(f"{name}: the file has {tuple(weights[name].shape)}, this network needs {tuple(shape)}")
    if problems:
        raise ValueError(f"{path}: the weights do not fit this network: " + "; ".join(problems))
    return {k: np.asarray(v, np.float32) for k, v in weights.items()}


def entries(layers):
    """Every entry of ``layers``, the ones inside groups too."""
    for layer in layers:
        yield layer
        for value in layer.values():
            if isinstance(value, list):  # a group's pipeline, or its list of paths
                for item in value:
                    yield from entries(item if isinstance(item, list) else [item])


def fold_batchnorms(weights):
    """``weights`` and, for every entry with a "fold", the merged weight and bias of its linear
    layer and the batchnorm after it (computed in float64): y = z * s + (beta - mean * s) with
    s = gamma / sqrt(var + eps) after z = W a + b is the layer W * s, (b - mean) * s + beta."""
    out = dict(weights)
    for layer in entries(LAYERS):
        fold = layer.get("fold")
        if fold is None:
            continue
        linear, norm = fold["linear"], fold["batchnorm"]
        w = weights[linear + ".weight"].astype(np.float64)
        b = weights[linear + ".bias"].astype(np.float64) if linear + ".bias" in weights else np.zeros(len(w))
        gamma, beta, mean, var = (weights[f"{norm}.{k}"].astype(np.float64)
                                  for k in ("weight", "bias", "running_mean", "running_var"))
        s = gamma / np.sqrt(var + fold["eps"])
        out[layer["name"] + ".weight"] = (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        out[layer["name"] + ".bias"] = ((b - mean) * s + beta).astype(np.float32)
    return out


def predict(x, weights=None):
    """Class probabilities (N, outputs) for images x (N, C, H, W) or one image (C, H, W) in [0, 1].

    ``weights``: a dict from load_weights, a path to a weights file, or None for WEIGHTS.
    """
    if weights is None or isinstance(weights, (str, Path)):
        path = str(weights or WEIGHTS)
        if path not in _cache:
            _cache[path] = fold_batchnorms(load_weights(path))
        weights = _cache[path]
    else:
        weights = fold_batchnorms(weights)
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"expected images of shape {INPUT_SHAPE} (channels, height, width), got {x.shape[1:]}")
    if NORMALIZATION is not None:  # (x - mean) * (1 / std), the reciprocal taken in float64 as the app does
        mean = np.asarray(NORMALIZATION["mean"]).astype(np.float32)[None, :, None, None]
        scale = (1.0 / np.asarray(NORMALIZATION["std"])).astype(np.float32)[None, :, None, None]
        x = (x - mean) * scale
    return run(LAYERS, x, weights)


def run(layers, x, weights):
    """x through ``layers`` (LAYERS, or a group's inner ones), each by its kind's step."""
    for layer in layers:
        x = STEPS[layer["kind"]](x, layer, weights)
    return x


def pad(x, pads, value=0.0):
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, x.dtype)
    out[:, :, top:top + h, left:left + w] = x
    return out


def windows(x, kernel, stride):
    """Every kernel offset's strided view of x (..., H, W), in row-major window order."""
    (kh, kw), (sh, sw) = kernel, stride
    ho, wo = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
    return [x[..., i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] for i in range(kh) for j in range(kw)]


def activation(x, name):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "leaky_relu":
        return np.maximum(x, x * x.dtype.type(LEAKY_RELU_SLOPE))
    if name == "sigmoid":
        e = np.exp(-np.abs(x))
        r = 1 / (1 + e)
        return np.where(x >= 0, r, e * r)
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return x

__STEPS__

def read_image(path):
    """One image file as a (C, H, W) float32 array in [0, 1] of INPUT_SHAPE.

    .npy arrays are used as they are (integer pixels are divided by 255); binary PGM/PPM are
    read directly; anything else needs Pillow, which also resizes to the network's input.
    """
    path = Path(path)
    c, h, w = INPUT_SHAPE
    if path.suffix.lower() == ".npy":
        a = np.load(path, allow_pickle=False)
        a = a / 255.0 if a.dtype.kind in "ui" else a
        if a.ndim == 2:
            a = a[None]
        return np.asarray(a, np.float32).reshape(INPUT_SHAPE)
    raw = path.read_bytes()
    if raw[:2] in (b"P5", b"P6"):
        a = _read_netpbm(raw)
    else:
        try:
            from PIL import Image
        except ImportError:
            raise SystemExit(f"{path}: reading this image needs Pillow (pip install pillow); "
                             "or pass a .npy array or a binary PGM/PPM") from None
        with Image.open(path) as img:
            img = img.convert({1: "L", 3: "RGB", 4: "RGBA"}.get(c, "L"))
            if img.size != (w, h):
                print(f"{path}: resized from {img.size[0]}x{img.size[1]} to {w}x{h}", file=sys.stderr)
                img = img.resize((w, h), Image.BILINEAR)
            a = np.asarray(img, np.float32) / 255.0
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] != c and c == 1:
        a = a.mean(axis=2, keepdims=True)
    a = a.transpose(2, 0, 1)
    if a.shape != INPUT_SHAPE:
        raise SystemExit(f"{path}: the image is {a.shape} (channels, height, width); the network needs {INPUT_SHAPE}")
    return np.ascontiguousarray(a, np.float32)


def _read_netpbm(raw):
    fields, pos = [], 2
    while len(fields) < 3:
        while raw[pos:pos + 1].isspace():
            pos += 1
        if raw[pos:pos + 1] == b"#":
            pos = raw.index(b"\n", pos)
            continue
        start = pos
        while not raw[pos:pos + 1].isspace():
            pos += 1
        fields.append(int(raw[start:pos]))
    w, h, maxval = fields
    channels = 3 if raw[:2] == b"P6" else 1
    dtype = ">u2" if maxval > 255 else np.uint8
    data = np.frombuffer(raw, dtype, w * h * channels, pos + 1)
    return data.reshape(h, w, channels).astype(np.float32) / maxval


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    weights = WEIGHTS
    if argv[0].lower().endswith(".npz"):
        weights, argv = argv[0], argv[1:]
    if not argv:
        print("give at least one image after the weights file", file=sys.stderr)
        return 2
    try:
        loaded = load_weights(weights)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    for path in argv:
        try:
            image = read_image(path)
        except (OSError, ValueError) as exc:  # Pillow's "cannot identify image file" is an OSError
            print(f"{path}: cannot read the image: {exc}", file=sys.stderr)
            return 1
        p = predict(image, loaded)[0]
        if len(p) == 1:  # one binary output: the probability of class 1
            p = np.array([1 - p[0], p[0]])
        best = int(np.argmax(p))
        name = CLASS_NAMES[best] if best < len(CLASS_NAMES) else str(best)
        top = ", ".join(f"{CLASS_NAMES[k] if k < len(CLASS_NAMES) else k} {100 * p[k]:.1f}%"
                        for k in np.argsort(-p)[:3])
        print(f"{path}: {name}  ({top})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''
