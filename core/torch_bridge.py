"""The same network in PyTorch, with the same weights: the reference for parity tests and the
benchmark, and the basis of the PyTorch export. torch is imported only when this is used.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np


def _torch():
    try:
        import torch
    except ImportError as exc:  # the app works without torch; only this bridge needs it
        raise ImportError("PyTorch is not installed; install it with: pip install torch==2.13.0") from exc
    return torch


def torch_modules(network, include_final_activation: bool = True) -> list[tuple[str, Any]]:
    """(name, module) pairs reproducing ``network`` layer by layer, weights copied from it.

    With ``include_final_activation=False`` the last activation is left out, so the output is
    the logits a fused loss (torch's cross_entropy) expects.
    """
    torch = _torch()
    nn = torch.nn
    mods: list[tuple[str, Any]] = []
    for stage in network.stages:
        info, block, geo = stage.info, stage.info.block, stage.info.geometry
        name, kind = info.name, info.kind
        if kind in ("conv", "pool"):
            t, b, l, r = geo["pads"]
            if any(geo["pads"]):
                fill = float("-inf") if kind == "pool" and block["mode"] == "max" else 0.0
                mods.append((f"{name}_pad", nn.ConstantPad2d((l, r, t, b), fill)))
        if kind == "conv":
            conv = nn.Conv2d(geo["in_channels"], block["filters"], geo["kernel"], geo["stride"])
            _copy(conv, stage.param_layer)
            mods.append((name, conv))
            mods.append((f"{name}_act", activation_module(block["activation"])))
        elif kind == "pool":
            mode = block["mode"]
            if mode == "max":
                mods.append((name, nn.MaxPool2d(geo["kernel"], geo["stride"])))
            else:
                area = geo["kernel"][0] * geo["kernel"][1] if mode == "sum" else 1
                mods.append((name, _ScaledAvgPool(geo["kernel"], geo["stride"], area)))
        elif kind == "dense":
            if info.implicit_flatten:
                mods.append((f"{name}_flatten", nn.Flatten()))
            lin = nn.Linear(geo["in_features"], block["units"])
            _copy(lin, stage.param_layer)
            mods.append((name, lin))
            mods.append((f"{name}_act", activation_module(block["activation"])))
        elif kind == "flatten":
            mods.append((name, nn.Flatten()))
        elif kind == "activation":
            mods.append((name, activation_module(block["activation"])))
        elif kind == "dropout":
            mods.append((name, nn.Dropout(block["rate"])))
    if not include_final_activation and network.stages[-1].info.kind in ("conv", "dense", "activation"):
        mods.pop()  # those blocks end with their activation module
    return mods


def torch_sequential(network, include_final_activation: bool = True):
    """An ``nn.Sequential`` of ``torch_modules``, float32, in eval mode."""
    from collections import OrderedDict

    torch = _torch()
    seq = torch.nn.Sequential(OrderedDict(torch_modules(network, include_final_activation)))
    return seq.float().eval()


def activation_module(name: str):
    nn = _torch().nn
    from netbuilder.core.blocks import LEAKY_RELU_SLOPE

    return {
        "relu": lambda: nn.ReLU(),
        "leaky_relu": lambda: nn.LeakyReLU(LEAKY_RELU_SLOPE),
        "sigmoid": lambda: nn.Sigmoid(),
        "tanh": lambda: nn.Tanh(),
        "identity": lambda: nn.Identity(),
        "softmax": lambda: nn.Softmax(dim=1),
    }[name]()


def _copy(module, layer) -> None:
    torch = _torch()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.params["weight"], np.float32)))
        module.bias.copy_(torch.from_numpy(np.ascontiguousarray(layer.params["bias"], np.float32)))


@functools.cache
def _scaled_avg_pool_class():
    torch = _torch()

    class ScaledAvgPool(torch.nn.Module):
        """Average pooling times ``scale``: sum pooling when scale is the window area."""

        def __init__(self, kernel, stride, scale):
            super().__init__()
            self.pool = torch.nn.AvgPool2d(kernel, stride)
            self.scale = float(scale)

        def forward(self, x):
            y = self.pool(x)
            return y * self.scale if self.scale != 1 else y

    return ScaledAvgPool


def _ScaledAvgPool(kernel, stride, scale):
    return _scaled_avg_pool_class()(kernel, stride, scale)
