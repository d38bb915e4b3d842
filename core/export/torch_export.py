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

from netbuilder.core.blocks import KINDS
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


def stage_lines(stages, final_activation: bool = True) -> tuple[list[str], list[str], list[str]]:
    """(``__init__`` lines, ``forward`` lines, class sources of groups) for a pipeline of stages, each
    written by its block's kind (``BlockKind.torch``; a group's ``torch_classes`` too)."""
    reserved = _reserved_names()
    init: list[str] = []
    body: list[str] = []
    classes: list[str] = []
    last = len(stages) - 1
    for i, stage in enumerate(stages):
        info = stage.info
        name, kind = info.name, info.kind
        if name in reserved:
            raise ExportError(f"block {info.index + 1} ({kind}): the name {name!r} is taken by PyTorch's nn.Module "
                              f"(or the export), so it cannot name a layer; rename the block, e.g. {kind}_{name}")
        # a legal block name that is a Python keyword cannot be written self.<name>
        attr = f"getattr(self, {name!r})" if keyword.iskeyword(name) else f"self.{name}"
        spec = KINDS[kind]
        classes += spec.torch_classes(stage)
        module, lines = spec.torch(stage, final_activation or i != last)
        if module is not None:
            init.append(f"self.add_module({name!r}, {module})" if keyword.iskeyword(name)
                        else f"self.{name} = {module}")
        body += [line.replace("{m}", attr) for line in lines]
    return init, body, classes


def module_source(network, class_names: list[str] | None = None, final_activation: bool = True,
                  logits_switch: bool = False) -> str:
    """The Python source of ``model.py`` for ``network``: ``class Net(nn.Module)`` and its constants.

    Each block's kind writes its module and forward lines (``BlockKind.torch``); the torch bridge
    builds its reference model from this same source. ``final_activation=False`` leaves the last
    block's activation out (logits for a fused loss), for the bridge only. ``logits_switch=True``
    (the training script's model.py) gives ``forward(x, logits=False)``: probabilities as usual,
    or with ``logits=True`` the last block without its activation, for a loss that applies it
    itself (cross_entropy's softmax, binary_cross_entropy's sigmoid).
    """
    project = network.project
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
    stage_init, stage_body, classes = stage_lines(network.stages, final_activation)
    init += [f"        {line}" for line in stage_init]
    signature = "x"
    if logits_switch and final_activation and network._fused:
        signature = "x, logits=False"
        last = network.stages[-1]
        _, with_act, _ = stage_lines([last], True)
        _, without, _ = stage_lines([last], False)
        stage_body = stage_body[:len(stage_body) - len(with_act)]
        stage_body += ["if logits:  # for the training loss, which applies the last activation itself",
                       *[f"    {line}" for line in without or ["pass"]], "else:",
                       *[f"    {line}" for line in with_act]]
    body += [f"        {line}" for line in stage_body]

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


{''.join(c + chr(10) * 3 for c in classes)}class Net(nn.Module):
    def __init__(self):
        super().__init__()
{chr(10).join(init)}

    def forward(self, {signature}):
{chr(10).join(body)}
        return x
'''


def state_dict(network):
    """The network's parameters and buffers as a ``{name: tensor}`` dict (copies): float32, and
    integer buffers (BatchNorm's step count) as int64, as torch keeps them."""
    torch = _torch()
    return {name: torch.from_numpy(np.array(p, np.int64 if np.issubdtype(p.dtype, np.integer) else np.float32))
            for name, p in network.state_dict().items()}


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
