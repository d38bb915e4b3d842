"""PyTorch export: a readable generated ``model.py`` (``class Net(nn.Module)``) and ``weights.pt``.

The module has one attribute per block, named as the block, in the project's order, so its
``state_dict`` keys are the engine's parameter names (``conv1.weight``...); the weights file is
a plain ``state_dict`` of float32 tensors that ``torch.load(path, weights_only=True)`` reads.
The input normalisation is built into ``forward`` (raw pixels in [0, 1] go in, as in the app).
torch is imported only when an export or an import of a state_dict runs.
"""
from __future__ import annotations

import io
import keyword
import os
from pathlib import Path

import numpy as np

from netbuilder.core.blocks import LEAKY_RELU_SLOPE
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

MODULE_FILE, WEIGHTS_FILE = "model.py", "weights.pt"
# Names a block cannot have as an nn.Module attribute: nn.Module's own, and the normalisation buffers.
_BUFFERS = ("input_mean", "input_scale")


def _torch():
    from netbuilder.core.torch_bridge import _torch as bridge_torch

    try:
        return bridge_torch()
    except ImportError as exc:
        raise ExportError(f"the PyTorch export needs torch: {exc}") from None


def _reserved_names() -> set[str]:
    import torch.nn as nn

    return set(dir(nn.Module)) | set(_BUFFERS)


def _fmt(value: float) -> str:
    return repr(float(value))


def _pair(p) -> str:
    return f"({int(p[0])}, {int(p[1])})"


_FUNCTIONAL = {"relu": "torch.relu({})", "leaky_relu": f"F.leaky_relu({{}}, {LEAKY_RELU_SLOPE!r})",
               "sigmoid": "torch.sigmoid({})", "tanh": "torch.tanh({})", "identity": "{}",
               "softmax": "torch.softmax({}, dim=1)"}
_MODULES = {"relu": "nn.ReLU()", "leaky_relu": f"nn.LeakyReLU({LEAKY_RELU_SLOPE!r})", "sigmoid": "nn.Sigmoid()",
            "tanh": "nn.Tanh()", "identity": "nn.Identity()", "softmax": "nn.Softmax(dim=1)"}


def module_source(network, class_names: list[str] | None = None) -> str:
    """The Python source of ``model.py`` for ``network``: ``class Net(nn.Module)`` and its constants."""
    project = network.project
    reserved = _reserved_names()
    stats = normalization_of(project)
    init: list[str] = []
    body: list[str] = []
    if stats is not None:
        mean, std = stats
        init += ["        # input normalisation per channel, from the training images: (x - mean) * (1 / std)",
                 f"        self.register_buffer(\"input_mean\", torch.tensor({[float(v) for v in mean]!r})"
                 ".view(1, -1, 1, 1), persistent=False)",
                 f"        self.register_buffer(\"input_scale\", (1 / torch.tensor({[float(v) for v in std]!r}, "
                 "dtype=torch.float64)).float().view(1, -1, 1, 1), persistent=False)"]
        body.append("        x = (x - self.input_mean) * self.input_scale")
    for stage in network.stages:
        info, block, geo = stage.info, stage.info.block, stage.info.geometry
        name, kind = info.name, info.kind
        if name in reserved:
            raise ExportError(f"block {info.index + 1} ({kind}): the name {name!r} is taken by PyTorch's nn.Module "
                              f"(or the export), so it cannot name a layer; rename the block, e.g. {kind}_{name}")
        if keyword.iskeyword(name):  # a legal block name, but self.<keyword> would be a syntax error
            attr = f"getattr(self, {name!r})"
            assign = f"        self.add_module({name!r}, {{}})"
        else:
            attr = f"self.{name}"
            assign = f"        self.{name} = {{}}"
        pad_line = None
        if kind in ("conv", "pool"):
            t, b, l, r = geo["pads"]
            symmetric = t == b and l == r
            fill = ", value=float(\"-inf\")" if kind == "pool" and block["mode"] == "max" else ""
            padding = f", padding={_pair((t, l))}" if symmetric and (t or l) else ""
            if not symmetric:  # torch layers pad symmetrically; 'same' may put the extra pixel bottom/right
                pad_line = f"        x = F.pad(x, ({l}, {r}, {t}, {b}){fill})  # left, right, top, bottom"
        if kind == "conv":
            init.append(assign.format(f"nn.Conv2d({geo['in_channels']}, {block['filters']}, "
                                      f"kernel_size={_pair(geo['kernel'])}, stride={_pair(geo['stride'])}{padding})"))
            if pad_line:
                body.append(pad_line)
            body.append(f"        x = {_FUNCTIONAL[block['activation']].format(f'{attr}(x)')}")
        elif kind == "pool":
            window = f"kernel_size={_pair(geo['kernel'])}, stride={_pair(geo['stride'])}{padding}"
            if block["mode"] == "max":
                layer = f"nn.MaxPool2d({window})"
            elif block["mode"] == "average":  # padded zeros count, as in the app
                layer = f"nn.AvgPool2d({window}, count_include_pad=True)"
            else:  # sum pooling: the window total, i.e. an average without the division
                layer = f"nn.AvgPool2d({window}, count_include_pad=True, divisor_override=1)"
            init.append(assign.format(layer))
            if pad_line:
                body.append(pad_line)
            body.append(f"        x = {attr}(x)")
        elif kind == "dense":
            init.append(assign.format(f"nn.Linear({geo['in_features']}, {block['units']})"))
            if info.implicit_flatten:
                body.append("        x = torch.flatten(x, 1)")
            body.append(f"        x = {_FUNCTIONAL[block['activation']].format(f'{attr}(x)')}")
        elif kind == "flatten":
            init.append(assign.format("nn.Flatten()"))
            body.append(f"        x = {attr}(x)")
        elif kind == "activation":
            init.append(assign.format(_MODULES[block["activation"]]))
            body.append(f"        x = {attr}(x)")
        elif kind == "dropout":
            init.append(assign.format(f"nn.Dropout({float(block['rate'])!r})"))
            body.append(f"        x = {attr}(x)  # identity in eval mode")
        else:
            raise ExportError(f"block {info.index + 1} ({kind}): no PyTorch mapping for this kind")

    c, h, w = (int(v) for v in project.input_shape)
    names = class_names if class_names is not None else class_names_of(project)
    title = project.name.replace('"""', "'''").replace("\\", "/")
    return f'''"""{title}: generated by netbuilder.

Input: (N, {c}, {h}, {w}) float32 pixels scaled to [0, 1]{", normalised inside forward" if stats is not None else ""}.
Output: (N, {network.output_features}) class probabilities (the last block's activation included).

    import torch
    from model import Net
    net = Net()
    net.load_state_dict(torch.load("{WEIGHTS_FILE}", weights_only=True))
    net.eval()
    with torch.no_grad():
        probabilities = net(x)
"""
import torch
import torch.nn.functional as F
from torch import nn

INPUT_SHAPE = ({c}, {h}, {w})  # channels, height, width
CLASS_NAMES = {names!r}
CLASS_TO_INDEX = {{name: index for index, name in enumerate(CLASS_NAMES)}}  # the output each class is


class Net(nn.Module):
    def __init__(self):
        super().__init__()
{chr(10).join(init)}

    def forward(self, x):
{chr(10).join(body)}
        return x
'''


def state_dict(network):
    """The network's parameters as a ``{name: float32 tensor}`` dict (copies)."""
    torch = _torch()
    return {name: torch.from_numpy(np.array(p, np.float32, copy=True)) for name, p in network.parameters().items()}


def load_net(module_path: str | os.PathLike, weights_path: str | os.PathLike):
    """``Net`` from a generated ``model.py`` with the state_dict at ``weights_path``, in eval mode."""
    torch = _torch()
    module = load_module(module_path, "torch_model")
    net = module.Net()
    net.load_state_dict(torch.load(str(weights_path), weights_only=True))
    return net.float().eval()


def export_torch(network, path: str | os.PathLike, *, samples: np.ndarray | None = None,
                 sample_source: str | None = None, class_names: list[str] | None = None):
    """Write ``model.py`` and ``weights.pt`` into folder ``path`` after checking them in torch.

    The folder is created if missing (its parent must exist); existing files of those names are
    replaced only once the check passed. Returns the ``VerificationReport``; raises
    ``ExportError`` (nothing written) if torch is missing, a file cannot be written, or the
    module's outputs differ from the engine's.
    """
    torch = _torch()
    if samples is None:
        samples, sample_source = verification_samples(network.project)
    source = module_source(network, class_names)
    state = state_dict(network)
    folder = Path(path)
    created = not folder.exists()
    dests = bundle_paths(folder, [MODULE_FILE, WEIGHTS_FILE], "PyTorch export")
    try:
        with Staging("PyTorch export") as staging:
            tmp_py, tmp_pt = staging.temp(dests[0]), staging.temp(dests[1])
            try:
                tmp_py.write_text(source, encoding="utf-8")
                # Serialised in memory, written by Python: torch's own file writer reports a full
                # disk as "basic_ios::clear: iostream error"; this way it is the system's words.
                buffer = io.BytesIO()
                torch.save(state, buffer)
                tmp_pt.write_bytes(buffer.getbuffer())
            except OSError as exc:
                raise ExportError(f"cannot write the PyTorch export to {folder}: {exc.strerror or exc}") from None
            net = load_net(tmp_py, tmp_pt)

            def run(x):
                with torch.no_grad():
                    return net(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()

            report = compare("torch", network, samples, run, f"torch {torch.__version__}", dests, sample_source or "")
            if not report.passed:
                raise ExportError(f"the PyTorch export of {network.project.name!r} gives other answers than the "
                                  f"app; nothing was written\n{report}", report)
            staging.publish()
    except BaseException:
        if created:
            remove_if_empty(folder)
        raise
    return report


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``{name: array}`` of a PyTorch state_dict file (read with weights_only=True).

    Raises ``WeightsError`` naming the file when it is missing, truncated or not a state_dict.
    """
    from netbuilder.core.weights import WeightsError

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {'is a folder, not a weights file' if path.is_dir() else 'no such file'}")
    from netbuilder.core.torch_bridge import _torch as bridge_torch

    try:
        torch = bridge_torch()
    except ImportError as exc:
        raise WeightsError(f"{path}: reading a PyTorch state_dict needs torch: {exc}") from None
    try:
        state = torch.load(str(path), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, pickle errors, EOFError...
        raise WeightsError(f"{path}: not a readable PyTorch state_dict (a truncated or foreign file?): "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise WeightsError(f"{path}: expected a state_dict (a dict of parameter name -> tensor), "
                           f"got {type(state).__name__}")
    return {k: v.detach().cpu().float().numpy() for k, v in state.items()}
