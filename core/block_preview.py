"""What one block makes of one sample, before or after training: the Build view's preview.

``block_output(project, sample, address, weights)`` runs ``sample`` (C, H, W) through the network
up to the block at ``address`` (inside a group too) and returns that block's output. It needs only
the blocks up to the group holding it to be sound, so a network still being built (without its
classifier yet) previews too. The weights are the seed's initial ones, as training would start
from, or ``weights`` (a trained network's ``state_dict``) wherever their names and shapes still fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netbuilder.core.addresses import Address
from netbuilder.core.blocks import KINDS, kind_of
from netbuilder.core.datasets.normalize import check_normalization
from netbuilder.core.errors import ERROR
from netbuilder.core.inference import infer
from netbuilder.core.layers.groups import forward_observed
from netbuilder.core.network import build_stage


class PreviewError(ValueError):
    """The block cannot be previewed yet; the message says what to fix first."""


@dataclass(frozen=True)
class BlockOutput:
    """The block's output for the sample: (C, H, W) maps or (F,) features, and where its weights came from."""

    name: str
    kind: str
    output: np.ndarray
    trained: int  # how many of the arrays up to the block came from the trained weights
    fresh: int  # ... and how many are the seed's initial ones


def block_output(project, sample: np.ndarray, address: Address, weights: dict[str, np.ndarray] | None = None,
                 ) -> BlockOutput:
    """The output of the block at ``address`` for ``sample`` (see the module); PreviewError when a
    block up to it has a problem, named as the canvas names it."""
    inference = infer(project)
    top = address[0]
    if not 0 <= top < len(inference.blocks):
        raise PreviewError(f"there is no block {top + 1}")
    infos = inference.blocks[:top + 1]
    if inference.input_shape is None:
        raise PreviewError("the input shape is not valid yet")
    # Only what makes a shape unknown stops the preview: the network's end (a classifier still
    # missing, a loss that does not fit yet) does not concern the blocks before it.
    broken = next((i for i, info in enumerate(infos) if info.output_shape is None), None)
    if broken is not None:
        reason = next((p.message for p in inference.problems if p.severity == ERROR and p.block == broken),
                      f"block {broken + 1}'s output shape is not known")
        raise PreviewError(f"fix this first: {reason}")
    rng = np.random.default_rng(project.training.seed)  # the draws Network makes for these blocks, in order
    stages = [build_stage(info, rng, np.float32) for info in infos]
    trained, fresh = _load_matching(stages, weights or {})
    x = np.asarray(sample, np.float32)[None]
    stats = project.dataset.get("normalization") if isinstance(project.dataset, dict) else None
    if stats:
        mean, std = check_normalization(stats, channels=inference.input_shape[0])
        shape = (-1,) + (1,) * (x.ndim - 2)
        x = (x - mean.reshape(shape).astype(np.float32)) / std.reshape(shape).astype(np.float32)
    wanted = _stage_path(inference, address)
    found: dict[int, np.ndarray] = {}
    last_layers = {id(stage.layers[-1]): stage for stage in _walk(stages) if stage.layers}

    def observe(layer, y) -> None:
        stage = last_layers.get(id(layer))
        if stage is not None and stage.path == wanted:
            found[0] = np.array(y[0])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        forward_observed([layer for stage in stages for layer in stage.layers], x, observe)
    info = inference.info_at(address)
    return BlockOutput(info.name if info else wanted, info.kind if info else "?", found[0], trained, fresh)


def _walk(stages) -> list:
    out = []
    for stage in stages:
        out.append(stage)
        out.extend(_walk(KINDS[stage.info.kind].inner_stages(stage)))
    return out


def _stage_path(inference, address: Address) -> str:
    """The engine's name for the block at ``address`` ("res1.conv1", "inc1.path2.conv1")."""
    parts = [inference.info_at(address[:1]).name]
    for depth in range(1, len(address) - 1, 2):
        group = inference.info_at(address[:depth])
        spec = kind_of(group.block)
        if spec is not None and spec.side_by_side:
            parts.append(f"path{address[depth] + 1}")
        parts.append(inference.info_at(address[:depth + 2]).name)
    return ".".join(parts)


def _load_matching(stages, weights: dict[str, np.ndarray]) -> tuple[int, int]:
    """Copy into the stages' layers every array of ``weights`` whose name and shape still fit;
    returns (arrays copied, arrays left at their initial values)."""
    trained = fresh = 0
    for stage in stages:  # a group's ``named`` lists its inner blocks' layers too
        for prefix, layer in stage.named:
            for store in (layer.params, layer.buffers):
                for key, array in store.items():
                    given = weights.get(f"{prefix}.{key}")
                    if given is not None and np.shape(given) == array.shape:
                        array[...] = given
                        trained += 1
                    else:
                        fresh += 1
    return trained, fresh
