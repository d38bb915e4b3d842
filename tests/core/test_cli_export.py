"""The netbuilder command's export and resume paths, called in-process: verification figures printed,
bad input refused with nothing written, and a stopped run resumed to the same weights bit for bit."""
import json
import signal

import numpy as np
import onnx
import pytest

from netbuilder.core import cli, cli_train
from netbuilder.core.weights import load_weights
from tests.core.test_cli import write_project

CONV = [{"kind": "conv", "filters": 2, "kernel_size": 3, "stride": 2, "padding": "same", "activation": "relu"},
        {"kind": "pool", "mode": "sum", "size": 2}, {"kind": "dense", "units": 10, "activation": "softmax"}]


def _trained(tmp_path, **changes):
    path = write_project(tmp_path, epochs=1, **changes)
    assert cli.main(["train", str(path), "--quiet", "--out", str(tmp_path / "w.npz")]) == 0
    return path, tmp_path / "w.npz"


@pytest.mark.parametrize("fmt,out,files", [
    ("onnx", "m.onnx", None),
    ("torch", "torch_out", ["model.py", "weights.pt"]),
    ("numpy", "numpy_out", ["predict.py", "weights.npz"]),
])
def test_export_prints_the_verification_figures(tmp_path, capsys, fmt, out, files):
    path, weights = _trained(tmp_path, blocks=CONV)
    capsys.readouterr()
    assert cli.main(["export", str(path), str(weights), "--format", fmt, "-o", str(tmp_path / out),
                     "--samples", "8"]) == 0
    text, err = capsys.readouterr()
    assert err == ""
    first = text.splitlines()[0]
    assert " export verified with " in first and "on 8 validation samples of" in first
    assert "largest difference" in first and "same predicted class for 8/8 samples (100.0%)" in first
    if files is None:
        onnx.checker.check_model(onnx.load(str(tmp_path / out)), full_check=True)
    else:
        assert sorted(p.name for p in (tmp_path / out).iterdir()) == files


def test_export_metadata_has_the_dataset_class_names(tmp_path, capsys):
    path, weights = _trained(tmp_path)
    assert cli.main(["export", str(path), str(weights), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    names = json.loads(meta["netbuilder.class_names"])
    assert len(names) == 10 and "circle" in names


def test_export_without_a_loadable_dataset_verifies_on_random_inputs(tmp_path, capsys):
    path, weights = _trained(tmp_path)
    doc = json.loads(path.read_text())
    doc["dataset"] = {"kind": "shapes", "train_size": -1}
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert cli.main(["export", str(path), str(weights), "--format", "numpy", "-o", str(tmp_path / "n")]) == 0
    out, err = capsys.readouterr()
    assert "verifying on random inputs: the dataset of" in err
    assert "on 64 random inputs in [0, 1]" in out


def test_export_weights_of_another_network_names_the_block_and_both_shapes(tmp_path, capsys):
    path, _ = _trained(tmp_path)
    other = write_project(tmp_path, name="other", epochs=1, blocks=CONV)
    assert cli.main(["train", str(other), "--quiet", "--out", str(tmp_path / "other.npz")]) == 0
    capsys.readouterr()
    assert cli.main(["export", str(path), str(tmp_path / "other.npz"), "--format", "onnx",
                     "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "the weights do not fit this network" in err
    assert "block 2 (dense 'dense1'): dense1.weight is (10 x 98) in the file, the network needs (10 x 784)" in err
    assert "the file has conv1.weight (2 x 1 x 3 x 3), which this network does not" in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_truncated_weights_and_unwritable_output(tmp_path, capsys):
    path, weights = _trained(tmp_path)
    (tmp_path / "cut.npz").write_bytes(weights.read_bytes()[:1000])
    capsys.readouterr()
    assert cli.main(["export", str(path), str(tmp_path / "cut.npz"), "--format", "torch", "-o",
                     str(tmp_path / "t")]) == 1
    assert "truncated" in capsys.readouterr().err and not (tmp_path / "t").exists()
    assert cli.main(["export", str(path), str(weights), "--format", "onnx", "-o",
                     str(tmp_path / "missing" / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("netbuilder: cannot write the ONNX model to ") and err.endswith("does not exist\n")
    assert cli.main(["export", str(path), str(tmp_path / "nothing.npz"), "--format", "onnx", "-o",
                     str(tmp_path / "m.onnx")]) == 1
    assert capsys.readouterr().err == f"netbuilder: {tmp_path / 'nothing.npz'}: no such file\n"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert not any(name.endswith(".tmp") for name in before)


def test_export_bad_command_lines(tmp_path, capsys):
    path, weights = _trained(tmp_path)
    assert cli.main(["export", str(path), str(weights), "--format", "tflite", "-o", "x"]) == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    assert cli.main(["export", str(path), str(weights), "--format", "onnx"]) == 2
    assert "-o/--output" in capsys.readouterr().err


def test_checkpoint_then_resume_equals_an_unbroken_run(tmp_path, capsys):
    path = write_project(tmp_path, epochs=3, blocks=CONV)
    assert cli.main(["train", str(path), "--quiet", "--out", str(tmp_path / "full.npz")]) == 0
    assert cli.main(["train", str(path), "--quiet", "--epochs", "1", "--checkpoint", str(tmp_path / "ck.npz"),
                     "--out", str(tmp_path / "part.npz")]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint after epoch 1 saved to {tmp_path / 'ck.npz'}" in out
    assert cli.main(["train", str(path), "--quiet", "--resume", str(tmp_path / "ck.npz"),
                     "--out", str(tmp_path / "resumed.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("resuming 'tiny' after epoch 1 on 100 images, 20 for validation: epochs 2 to 3 of ")
    assert lines[1].startswith("epoch 2/3  loss ") and lines[2].startswith("epoch 3/3  loss ")
    full, resumed = load_weights(tmp_path / "full.npz")[1], load_weights(tmp_path / "resumed.npz")[1]
    assert all(np.array_equal(full[k], resumed[k]) for k in full)
    # the resumed checkpoint was kept up to date: nothing left to do now
    assert cli.main(["train", str(path), "--resume", str(tmp_path / "ck.npz"),
                     "--out", str(tmp_path / "again.npz")]) == 0
    assert "the checkpoint has 3 epochs already (of 3); nothing to train" in capsys.readouterr().out


def test_ctrl_c_then_resume_equals_an_unbroken_run(tmp_path, capsys, monkeypatch):
    path = write_project(tmp_path, epochs=3)
    assert cli.main(["train", str(path), "--quiet", "--out", str(tmp_path / "full.npz")]) == 0
    real_batch = cli_train.Progress.batch

    def press_ctrl_c(self, event, total):
        if event.epoch == 2 and event.batch == 2:
            signal.raise_signal(signal.SIGINT)
        real_batch(self, event, total)

    monkeypatch.setattr(cli_train.Progress, "batch", press_ctrl_c)
    assert cli.main(["train", str(path), "--checkpoint", str(tmp_path / "ck.npz")]) == 130
    assert "checkpoint after epoch 1 saved to" in capsys.readouterr().out
    monkeypatch.setattr(cli_train.Progress, "batch", real_batch)
    assert cli.main(["train", str(path), "--quiet", "--resume", str(tmp_path / "ck.npz"),
                     "--out", str(tmp_path / "resumed.npz")]) == 0
    full, resumed = load_weights(tmp_path / "full.npz")[1], load_weights(tmp_path / "resumed.npz")[1]
    assert all(np.array_equal(full[k], resumed[k]) for k in full)


def test_resume_from_bad_checkpoints(tmp_path, capsys):
    path, weights = _trained(tmp_path)
    capsys.readouterr()
    assert cli.main(["train", str(path), "--resume", str(weights)]) == 1
    assert "cannot resume: " in capsys.readouterr().err
    assert cli.main(["train", str(path), "--quiet", "--epochs", "1", "--checkpoint", str(tmp_path / "ck.npz")]) == 0
    doc = json.loads(path.read_text())
    doc["blocks"][-1]["units"] = 12
    doc["num_classes"] = 12
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert cli.main(["train", str(path), "--resume", str(tmp_path / "ck.npz")]) == 1
    err = capsys.readouterr().err
    assert f"cannot resume from {tmp_path / 'ck.npz'}" in err and "12 x 784" in err and "10 x 784" in err
    assert cli.main(["train", str(path), "--checkpoint", str(tmp_path / "missing" / "ck.npz")]) == 1
    assert "cannot write checkpoints to" in capsys.readouterr().err


def test_export_uses_the_normalisation_stored_with_the_weights(tmp_path, capsys):
    path, weights = _trained(tmp_path)
    assert "normalization" not in json.loads(path.read_text())["dataset"]  # training does not edit the file
    stats = load_weights(weights)[0].dataset["normalization"]
    assert cli.main(["export", str(path), str(weights), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert [n.op_type for n in model.graph.node][:2] == ["Sub", "Mul"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["netbuilder.normalization"]) == stats
