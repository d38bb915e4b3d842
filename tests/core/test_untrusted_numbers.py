"""Numbers that are not numbers: NaN, infinite or complex parameters are refused wherever weights
enter or leave (weights files, checkpoints, exports), each with one line naming the parameter."""
from __future__ import annotations

import json

import numpy as np
import pytest

from netbuilder.core import cli
from netbuilder.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from netbuilder.core.datasets import load_project_dataset
from netbuilder.core.export import ExportError, export
from netbuilder.core.network import Network
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.core.trainer import Trainer
from netbuilder.core.weights import PROJECT_KEY, WeightsError, load_weights, save_weights


@pytest.fixture
def xor():
    return load_project(example_path("xor"))


def write_raw(path, project, state):
    """A weights file written around our checks, as a hand-edited or hostile file would be."""
    arrays = dict(state)
    arrays[PROJECT_KEY] = np.frombuffer(project.to_json().encode(), np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("bad,message", [
    (np.nan, "dense1.weight has 1 NaN or infinite value (of 8)"),
    (np.inf, "dense1.weight has 1 NaN or infinite value (of 8)"),
])
def test_non_finite_parameters_are_refused_on_load(tmp_path, xor, bad, message):
    state = Network(xor).parameters()
    state = {k: v.copy() for k, v in state.items()}
    state["dense1.weight"].flat[3] = bad
    path = tmp_path / "w.npz"
    write_raw(path, xor, state)
    with pytest.raises(WeightsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_weights(path)


def test_complex_parameters_are_refused(tmp_path, xor):
    state = {k: v.astype(np.complex64) if k == "dense1.bias" else v for k, v in Network(xor).parameters().items()}
    path = tmp_path / "w.npz"
    write_raw(path, xor, state)
    with pytest.raises(WeightsError, match="dense1.bias holds complex numbers, not real numbers"):
        load_weights(path)


def test_export_from_a_nan_weights_file_is_one_line_and_writes_nothing(tmp_path, xor, capsys):
    project_file = tmp_path / "xor.json"
    project_file.write_text(xor.to_json())
    state = {k: np.full_like(v, np.nan) for k, v in Network(xor).parameters().items()}
    write_raw(tmp_path / "w.npz", xor, state)
    assert cli.main(["export", str(project_file), str(tmp_path / "w.npz"), "--format", "numpy",
                     "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NaN or infinite" in err and "dense1.weight" in err
    assert not (tmp_path / "out").exists()


def test_non_finite_weights_are_never_written(tmp_path, xor):
    state = {k: v.copy() for k, v in Network(xor).parameters().items()}
    state["dense2.bias"][0] = np.nan
    path = tmp_path / "w.npz"
    path.write_bytes(b"the old file")
    with pytest.raises(WeightsError, match="not written: dense2.bias has 1 NaN"):
        save_weights(path, state, xor)
    assert path.read_bytes() == b"the old file"


def test_a_checkpoint_with_nan_weights_is_refused_on_resume(tmp_path, xor):
    trainer = Trainer(xor, load_project_dataset(xor))
    trainer.fit(epochs=1)
    checkpoint = trainer.checkpoint()
    checkpoint.weights["dense1.weight"] = np.full_like(checkpoint.weights["dense1.weight"], np.inf)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, checkpoint)
    with pytest.raises(CheckpointError, match="refused: weights dense1.weight has 8 NaN or infinite values"):
        load_checkpoint(path)


def test_verification_fails_when_the_outputs_are_not_finite_even_if_both_sides_agree(tmp_path, xor):
    net = Network(xor)
    for p in net.parameters().values():
        p[...] = np.nan  # NaN agrees with NaN: that must not pass for "verified"
    with pytest.raises(ExportError) as caught:
        export(net, tmp_path / "net.onnx", "onnx")  # ONNX holds its own copy of the weights: verified
    assert "the engine gave 64 of 64 samples NaN or infinite outputs" in str(caught.value)
    assert not (tmp_path / "net.onnx").exists()
    with pytest.raises(ExportError, match="dense1.weight has 8 NaN or infinite values"):
        export(net, tmp_path / "out", "numpy")  # its weights.npz is refused before that
    assert not (tmp_path / "out").exists()


def test_metrics_and_messages_stay_json_clean(tmp_path):
    # A finished run's metrics never carry NaN (JSON has no NaN): allow_nan=False would raise.
    metrics = tmp_path / "m.jsonl"
    assert cli.main(["train", "xor", "--epochs", "1", "--quiet", "--out", str(tmp_path / "w.npz"),
                     "--metrics", str(metrics)]) == 0
    assert all(json.loads(line) for line in metrics.read_text().splitlines())
