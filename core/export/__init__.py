"""Exports other tools load (ONNX, PyTorch, numpy, a PyTorch training script), each verified before it
counts, and weight import.

``export(network, path, format)`` writes one format and returns its ``VerificationReport``;
the exported model takes raw pixels in [0, 1] and applies the project's input normalisation
itself, as the app does. ``import_weights(network, path)`` reads an engine ``.npz``, a
checkpoint or an exported PyTorch state_dict into a matching network.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from netbuilder.core.export.verify import (
    DEFAULT_SAMPLES,
    ExportError,
    VerificationReport,
    class_names_of,
    engine_outputs,
    verification_samples,
)

FORMATS = ("onnx", "torch", "numpy", "torch-train")
TORCH_SUFFIXES = (".pt", ".pth")


def export(network, path: str | os.PathLike, format: str, *, dataset=None, samples: np.ndarray | None = None,
           sample_source: str | None = None, count: int = DEFAULT_SAMPLES,
           base_dir: str | os.PathLike | None = None) -> VerificationReport:
    """Export ``network`` as ``format`` to ``path`` (an .onnx file; a folder for the others).

    "torch-train" writes a training script that trains the project from the seed's initial
    weights (``network`` gives the project; its weights are not used) on ``dataset``, loaded from
    the project's spec (relative paths from ``base_dir``) when not given.

    Verification inputs: ``samples`` if given, else ``count`` validation samples of ``dataset``,
    else random inputs. Class names come from ``dataset`` (or the project). Raises ExportError
    (nothing left at ``path``) when the export cannot be written or does not verify.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if format == "torch-train" and dataset is None:
        from netbuilder.core.export.torch_train_export import _load_data

        dataset = _load_data(network.project, base_dir)
    if samples is None:
        samples, sample_source = verification_samples(network.project, dataset, count)
    else:
        samples = np.asarray(samples, np.float32)
        want = tuple(int(v) for v in network.project.input_shape)
        if samples.ndim != 4 or samples.shape[1:] != want:
            raise ExportError(f"verification samples must be (N, {', '.join(map(str, want))}) images, "
                              f"got shape {samples.shape}")
        sample_source = sample_source or "given samples"
    kwargs = dict(samples=samples, sample_source=sample_source, class_names=class_names_of(network.project, dataset))
    if format == "onnx":
        from netbuilder.core.export.onnx_export import export_onnx

        return export_onnx(network, path, **kwargs)
    if format == "torch-train":
        from netbuilder.core.export.torch_train_export import export_torch_train

        return export_torch_train(network, path, dataset=dataset, base_dir=base_dir, **kwargs)
    if format == "torch":
        from netbuilder.core.export.torch_export import export_torch

        return export_torch(network, path, **kwargs)
    from netbuilder.core.export.numpy_export import export_numpy

    return export_numpy(network, path, **kwargs)


def read_weights_file(path: str | os.PathLike):
    """(``{parameter name: array}``, the embedded Project or None) of a weights file: an engine
    .npz or a checkpoint (both embed their project), or a PyTorch .pt/.pth state_dict (none).

    Raises ``WeightsError`` naming the file when it cannot be read.
    """
    path = Path(path)
    if path.suffix.lower() in TORCH_SUFFIXES:
        from netbuilder.core.export.torch_export import read_state_dict

        return read_state_dict(path), None
    from netbuilder.core.checkpoint import is_checkpoint, load_checkpoint
    from netbuilder.core.weights import load_weights

    if is_checkpoint(path):
        checkpoint = load_checkpoint(path)
        return checkpoint.weights, checkpoint.project
    project, state = load_weights(path)
    return state, project


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``{parameter name: array}`` of a weights file (see ``read_weights_file``)."""
    return read_weights_file(path)[0]


def import_weights(network, path: str | os.PathLike) -> None:
    """Copy the parameters of the weights file at ``path`` into ``network``.

    Every missing, unexpected or differently shaped parameter is named with the block and both
    shapes; on any mismatch the network is left unchanged (``WeightsError``).
    """
    load_state(network, read_weights(path), path)


def load_state(network, state: dict[str, np.ndarray], source: str | os.PathLike) -> None:
    """Copy ``state`` into ``network`` after checking it all; ``source`` names it in the error."""
    from netbuilder.core.weights import WeightsError

    problems = weight_mismatches(network, state)
    if problems:
        raise WeightsError(f"{source}: the weights do not fit this network: " + "; ".join(problems))
    for name, p in {**network.parameters(), **network.buffers()}.items():
        p[...] = state[name]


def weight_mismatches(network, state: dict[str, np.ndarray]) -> list[str]:
    """One message per parameter or buffer that is missing, extra, not real and finite, or of another shape."""
    from netbuilder.core.weights import value_problem

    params = {**network.parameters(), **network.buffers()}
    blocks = {s.path: s for s in network.walk_stages()}
    problems = []
    for name, p in params.items():
        stage = blocks[name.rpartition(".")[0]]
        info = stage.info
        where = (f"block {info.index + 1} ({info.kind} {info.name!r})" if stage.path == info.name
                 else f"{stage.path} ({info.kind})")
        if name not in state:
            problems.append(f"{where}: {name} {_shape(p.shape)} is missing from the file")
        elif value_problem(name, state[name]):
            problems.append(f"{where}: {value_problem(name, state[name])}")
        elif tuple(np.shape(state[name])) != p.shape:
            problems.append(f"{where}: {name} is {_shape(np.shape(state[name]))} in the file, "
                            f"the network needs {_shape(p.shape)}")
    problems += [f"the file has {name} {_shape(np.shape(state[name]))}, which this network does not"
                 for name in state if name not in params]
    return problems


def _shape(shape) -> str:
    return "(" + " x ".join(str(d) for d in shape) + ")" if len(shape) else "(scalar)"


__all__ = ["FORMATS", "ExportError", "VerificationReport", "export", "import_weights", "load_state",
           "read_weights", "read_weights_file",
           "weight_mismatches", "verification_samples", "engine_outputs", "class_names_of"]
