"""PyTorch training script export: ``train.py`` beside ``model.py``, ``weights.pt`` and the data.

The folder trains the project from scratch without netbuilder, with only torch and numpy:
``model.py`` is the PyTorch export's module (with ``forward(x, logits=False)`` for a loss that
applies the last activation itself), ``weights.pt`` the initial weights netbuilder draws from the
project's seed, and ``train.py`` (``core/export/train_script.py``) the same data, validation split,
normalisation, loss (and its class weights), optimiser, batch order and seed as ``core/trainer.py``.

Data: Fashion-MNIST, MNIST and IDX files are read by ``train.py`` itself from where netbuilder
found them (absolute paths, plain numpy); every other kind (the built-in shapes, XOR, npz, CSV and
image folders) is written beside it as ``data.npz``, the images exactly as netbuilder loaded them
(resized, scaled to [0, 1]), so no Pillow or torchvision is needed.

Before anything is written the export runs the generated script in this process: its data and
split must be the app's exactly, one training step from the initial weights must give the app's
loss, and the same step in float64 the app's loss and, after it, the app's predictions (the usual
export tolerance).
"""
from __future__ import annotations

import copy
import io
import math
import os
import sys
import threading
from pathlib import Path

import numpy as np

from netbuilder.core.export.verify import (
    DEFAULT_SAMPLES,
    ExportError,
    Staging,
    bundle_paths,
    class_names_of,
    compare,
    load_module,
    remove_if_empty,
    verification_samples,
)

SCRIPT_FILE, MODULE_FILE, WEIGHTS_FILE, DATA_FILE = "train.py", "model.py", "weights.pt", "data.npz"
IDX_KINDS = ("fashion-mnist", "mnist", "idx")
# data.npz larger than this is refused: point the project at IDX files (read in place) instead.
MAX_DATA_BYTES = 4 << 30
# The first batch's loss, script against app: float32 sums in other orders; float64 ones (the
# script's model holds the normalisation constants rounded to float32, the app's float64 ones).
LOSS_RTOL, LOSS_RTOL_64 = 1e-4, 1e-6
_MODEL_IMPORT = threading.Lock()  # train.py's "from model import Net" is resolved through sys.modules


def export_torch_train(network, path: str | os.PathLike, *, dataset=None, base_dir: str | Path | None = None,
                       from_trained: bool = False, samples: np.ndarray | None = None,
                       sample_source: str | None = None, class_names: list[str] | None = None,
                       count: int = DEFAULT_SAMPLES):
    """Write ``train.py``, ``model.py``, ``weights.pt`` (and ``data.npz``) into folder ``path``.

    ``network`` gives the project (architecture, training settings, and the input normalisation
    when it has one); the script starts from the seed's initial weights, or with
    ``from_trained`` from ``network``'s own weights. ``dataset`` is the project's data (loaded
    from its spec, paths relative to ``base_dir``, when not given). Returns the
    ``VerificationReport``; raises ``ExportError`` (nothing written) when torch is missing, the
    data cannot be had, or the script does not train as the app does.
    """
    from netbuilder.core.export.torch_export import _torch, module_source, state_dict
    from netbuilder.core.export.train_script import script_source
    from netbuilder.core.layers import Dropout
    from netbuilder.core.layers.batchnorm import BatchNorm
    from netbuilder.core.trainer import BatchEnd, RunEnded, Trainer

    torch = _torch()
    project = network.project.copy()
    spec = project.dataset if isinstance(project.dataset, dict) else {}
    kind = spec.get("kind", "shapes")
    if dataset is None:
        dataset = _load_data(project, base_dir)
    if from_trained:
        from netbuilder.core.network import Network

        start = Network(project, dtype=np.float32)
        start.load_state_dict(network.state_dict())
    else:
        start = None
    try:
        trainer = Trainer(project, dataset, network=start)
    except Exception as exc:  # noqa: BLE001 - TrainingError, DatasetError: the data does not fit the network
        raise ExportError(f"the PyTorch training script cannot train {project.name!r} on this data: {exc}") from None
    net = trainer.network
    shuffle_state = copy.deepcopy(trainer.rng.bit_generator.state)
    if shuffle_state.get("bit_generator") != "PCG64":
        raise ExportError(f"the training script needs numpy's PCG64 generator, the trainer has "
                          f"{shuffle_state.get('bit_generator')!r}")
    one_value_norms = [stage.path for stage in net.walk_stages()
                       if any(isinstance(layer, BatchNorm) for layer in stage.layers)
                       and int(np.prod(stage.info.input_shape[1:])) == 1]
    names = class_names if class_names is not None else class_names_of(project, dataset)

    idx = kind in IDX_KINDS
    if idx:
        data, data_note = _idx_data(spec, base_dir)
        arrays = None
    else:
        # Counted before anything is converted: a memory-mapped set is never made float32 whole here.
        size = sum(4 * int(np.prod(x.shape)) for x in (dataset.x_train, getattr(dataset, "x_val", None),
                                                      getattr(dataset, "x_test", None)) if x is not None)
        if size > MAX_DATA_BYTES:
            raise ExportError(f"the PyTorch training script export would write {size / 2 ** 30:.1f} GiB of images "
                              f"into {DATA_FILE} (at most {MAX_DATA_BYTES >> 30} GiB); give the project IDX files, "
                              "which train.py reads where they are")
        arrays = _snapshot(dataset)
        data = {"source": "npz", "file": DATA_FILE}
        data_note = (f"{DATA_FILE} beside this script holds the images of {dataset.name} as netbuilder loaded "
                     f"them ({kind} dataset), float32 in [0, 1].")
    model_src = module_source(net, names, logits_switch=True)
    script_src = script_source(title=project.name, settings=project.training, shuffle_state=shuffle_state,
                               logits=bool(net._fused), one_value_norms=one_value_norms, data=data,
                               data_note=data_note, from_trained=from_trained,
                               class_weights=trainer.class_weights)
    initial = state_dict(net)

    if samples is None:
        samples, sample_source = verification_samples(project, dataset, count)
    files = [SCRIPT_FILE, MODULE_FILE, WEIGHTS_FILE] + ([] if idx else [DATA_FILE])
    folder = Path(path)
    created = not folder.exists()
    dests = bundle_paths(folder, files, "PyTorch training script export")
    try:
        with Staging("PyTorch training script export") as staging:
            tmp = {name: staging.temp(dest) for name, dest in zip(files, dests)}
            try:
                tmp[SCRIPT_FILE].write_text(script_src, encoding="utf-8")
                tmp[MODULE_FILE].write_text(model_src, encoding="utf-8")
                buffer = io.BytesIO()
                torch.save(initial, buffer)
                tmp[WEIGHTS_FILE].write_bytes(buffer.getbuffer())
                if arrays is not None:
                    with open(tmp[DATA_FILE], "wb") as fh:
                        np.savez(fh, **arrays)
            except OSError as exc:
                raise ExportError(f"cannot write the PyTorch training script export to {folder}: "
                                  f"{exc.strerror or exc}") from None
            script, model = _load_script(tmp[SCRIPT_FILE], tmp[MODULE_FILE])
            report = _verify(torch, network=net, trainer=trainer, script=script, model=model,
                             weights=tmp[WEIGHTS_FILE], data_file=tmp.get(DATA_FILE), samples=samples,
                             sample_source=sample_source or "", dests=dests, Dropout=Dropout,
                             BatchEnd=BatchEnd, RunEnded=RunEnded)
            if not report.passed:
                raise ExportError(f"the PyTorch training script of {project.name!r} does not train as the app "
                                  f"does; nothing was written\n{report}", report)
            staging.publish()
    except BaseException:
        if created:
            remove_if_empty(folder)
        raise
    return report


def absolute_data_paths(project, base_dir: str | Path | None) -> None:
    """Make the file paths of ``project``'s dataset spec absolute (from ``base_dir``), in place: the
    export then finds the data wherever it runs (the window exports a copy of its project)."""
    from netbuilder.core.datasets.registry import _PATH_KEYS, resolve_path

    spec = project.dataset
    if isinstance(spec, dict) and base_dir is not None:
        for key in _PATH_KEYS:
            if isinstance(spec.get(key), str):
                spec[key] = str(resolve_path(spec[key], Path(base_dir)).absolute())


def _load_data(project, base_dir):
    from netbuilder.core.datasets import load_project_dataset

    try:
        return load_project_dataset(project, base_dir)
    except Exception as exc:  # noqa: BLE001 - DatasetError, OSError...: the script needs the data
        raise ExportError(f"the PyTorch training script export needs the project's data, which could not be "
                          f"loaded: {exc}") from None


def _idx_data(spec, base_dir) -> tuple[dict, str]:
    """train.py's DATA for IDX files (absolute paths), and the line its docstring says about them."""
    from netbuilder.core.datasets.registry import idx_sources

    try:
        sources = idx_sources(spec, Path(base_dir) if base_dir is not None else None)
    except Exception as exc:  # noqa: BLE001 - the files were loaded a moment ago; say what went wrong
        raise ExportError(f"the PyTorch training script export cannot find the IDX files: {exc}") from None
    data = {"source": "idx", "transpose": bool(sources.get("transpose", False))}
    for role in ("train_images", "train_labels", "test_images", "test_labels"):
        if sources.get(role) is not None:
            data[role] = str(Path(sources[role]).absolute())
    note = f"the IDX files named in DATA below ({spec.get('kind')}), read with numpy where they are."
    return data, note


def _snapshot(dataset) -> dict[str, np.ndarray]:
    """The dataset's splits as data.npz holds them (float32 images, int64 labels, no pickles)."""
    arrays = {"x_train": np.ascontiguousarray(dataset.x_train, np.float32),
              "y_train": np.asarray(dataset.y_train, np.int64)}
    for split in ("val", "test"):
        x = getattr(dataset, f"x_{split}", None)
        if x is not None:
            arrays[f"x_{split}"] = np.ascontiguousarray(x, np.float32)
            arrays[f"y_{split}"] = np.asarray(getattr(dataset, f"y_{split}"), np.int64)
    arrays["class_names"] = np.array([str(n) for n in dataset.class_names], dtype=str)
    return arrays


def _load_script(script_path: Path, model_path: Path):
    """The generated train.py as a module, its ``from model import Net`` given the generated model.py."""
    model = load_module(model_path, "torch_train_model")
    with _MODEL_IMPORT:
        saved = sys.modules.get("model")
        sys.modules["model"] = model
        try:
            script = load_module(script_path, "torch_train_script")
        finally:
            if saved is None:
                sys.modules.pop("model", None)
            else:
                sys.modules["model"] = saved
    return script, model


def _verify(torch, *, network, trainer, script, model, weights, data_file, samples, sample_source, dests,
            Dropout, BatchEnd, RunEnded):
    """Run the generated script against the app: data, split, first batch, one step, predictions.

    The first step runs twice on each side: in float32 through the trainer's own loop (the first
    batch's loss must agree), then in float64, where the two engines agree to rounding, so the
    predictions after the step check the optimiser's update too (in float32 one Adam step on a
    weight whose gradient is about Adam's eps can go either way: a difference that says nothing).
    Dropout is off on both sides: the two draw their masks from different generators.
    """
    from netbuilder.core.network import Network
    from netbuilder.core.optimizers import make_optimizer

    folder = Path(data_file).parent if data_file is not None else None
    if data_file is not None:  # the script reads DATA["file"] from its folder: point it at the staged file
        script.DATA = {**script.DATA, "file": Path(data_file).name}
    data = script.load_data(folder) if folder is not None else script.load_data()
    x, y, train_idx, val_idx = script.prepare(data)
    problems = []
    if x.shape != trainer._x.shape or not np.array_equal(x, trainer._x) or not np.array_equal(y, trainer._y):
        problems.append("its images or labels are not the app's")
    if not (np.array_equal(train_idx, trainer.train_idx) and np.array_equal(val_idx, trainer.val_idx)):
        problems.append("its validation split is not the app's")
    if problems:
        raise ExportError("the generated train.py does not train on the app's data: " + "; ".join(problems))
    initial = torch.load(str(weights), weights_only=True)

    def script_step(dtype):
        net = model.Net()
        net.load_state_dict(initial)
        for module in net.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        script.DTYPE = dtype
        try:
            with torch.random.fork_rng(devices=[]):  # the script seeds torch's generator: leave ours as it was
                history = script.train(net.to(dtype), data, epochs=1, device="cpu", max_steps=1, log=None)
        except script.Diverged as exc:
            raise ExportError(f"the generated train.py could not take a first training step to check: {exc}") from None
        finally:
            script.DTYPE = torch.float32
        return net.eval(), history["batch_losses"][0][0]

    def no_dropout(net):
        for stage in net.walk_stages():
            for layer in stage.layers:
                if isinstance(layer, Dropout):
                    layer.rate = 0.0

    # float32: the trainer's own loop, one batch
    no_dropout(network)
    _, theirs32 = script_step(torch.float32)
    ours32, first = None, None
    for event in trainer.run(epochs=1):
        if isinstance(event, BatchEnd) and ours32 is None:
            ours32, first = event.loss, trainer._order[:trainer.batch_size].copy()
            trainer.stop()
        elif isinstance(event, RunEnded) and event.status not in ("stopped", "finished"):
            raise ExportError(f"the app could not take a training step to check the script against: {event.message}")
    # float64: the same step from the same weights on the same batch
    app64 = Network(network.project, dtype=np.float64)
    app64.loss.class_weights = network.loss.class_weights  # the run's ("balanced": the trainer's, from the split)
    app64.load_state_dict({name: value.numpy() for name, value in initial.items()})
    no_dropout(app64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ours64, _ = app64.train_step(trainer._x[first].astype(np.float64), trainer._y[first])
        make_optimizer(network.project.training).step(app64.parameters(), app64.gradients())
    net64, theirs64 = script_step(torch.float64)

    def predict(xs):
        with torch.no_grad():
            return net64(torch.from_numpy(np.asarray(xs, np.float64))).numpy()

    diff32 = abs(theirs32 - ours32) / max(abs(ours32), 1e-12)
    diff64 = abs(theirs64 - ours64) / max(abs(ours64), 1e-12)
    note = (f"data, validation split and batch order are the app's; the first training step's loss is "
            f"{theirs32:.6g} in train.py and {ours32:.6g} in the app (float32, relative difference {diff32:.2g}); "
            f"the predictions compared are those after that step in float64 (loss difference {diff64:.2g})")
    report = compare("torch-train", app64, samples, predict, f"torch {torch.__version__}", dests, sample_source,
                     note)
    bad = [f"{what} differ by more than {limit:g}" for what, d, limit in
           (("the float32 losses", diff32, LOSS_RTOL), ("the float64 losses", diff64, LOSS_RTOL_64))
           if not math.isfinite(d) or d > limit]
    if bad:
        from dataclasses import replace

        report = replace(report, max_abs_diff=math.inf, note=f"{note}; {' and '.join(bad)}")
    return report
