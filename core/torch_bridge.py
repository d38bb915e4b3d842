"""The same network in PyTorch, with the same weights: the reference for parity tests and the
benchmark. It is built from the very source the PyTorch export writes (each kind's
``BlockKind.torch`` lowering), so the export and the reference cannot drift apart. torch is
imported only when this is used.
"""
from __future__ import annotations


def _torch():
    try:
        import torch
    except ImportError as exc:  # the app works without torch; only this bridge needs it
        raise ImportError("PyTorch is not installed; install it with: pip install torch==2.13.0") from exc
    return torch


def torch_model(network, final_activation: bool = True):
    """The generated ``Net`` of ``network`` with its weights, float32, in eval mode.

    With ``final_activation=False`` the last block's activation is left out, so the output is
    the logits a fused loss (torch's cross_entropy) expects.
    """
    from netbuilder.core.export.torch_export import module_source, state_dict

    _torch()
    namespace: dict = {"__name__": "netbuilder_torch_model"}
    exec(compile(module_source(network, final_activation=final_activation), "<netbuilder model.py>", "exec"),
         namespace)
    net = namespace["Net"]()
    net.load_state_dict(state_dict(network))
    return net.float().eval()
