"""The netbuilder command, called in-process: train, summary, the app launcher and bad input."""
import io
import json
import signal

import numpy as np
import pytest

from netbuilder.core import cli, cli_train
from netbuilder.core.resources import resource_path
from netbuilder.core.weights import load_weights

EXAMPLES = resource_path("examples")


def write_project(folder, name="tiny", epochs=2, **changes):
    doc = {
        "format": 1, "name": name, "input_shape": [1, 28, 28], "num_classes": 10,
        "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "softmax"}],
        "training": {"loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.01, "batch_size": 32,
                     "epochs": epochs, "validation_fraction": 0.2, "seed": 0},
        "dataset": {"kind": "shapes", "train_size": 120, "test_size": 0},
    }
    doc.update(changes)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


# --- train ------------------------------------------------------------------------------------
def test_train_writes_weights_next_to_the_project(tmp_path, capsys):
    path = write_project(tmp_path)
    assert cli.main(["train", str(path)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "training 'tiny' on 100 images, 20 for validation: 2 epochs of 4 batches, numpy engine on cpu"
    assert lines[1].startswith("epoch 1/2  loss ") and "val_accuracy" in lines[1] and "images/s" in lines[1]
    assert lines[2].startswith("epoch 2/2  loss ")
    weights = tmp_path / "tiny.weights.npz"
    assert lines[3] == f"finished 2 epochs; weights saved to {weights}"
    project, state = load_weights(weights)
    assert project.name == "tiny" and state["dense1.weight"].shape == (10, 784)
    assert "Traceback" not in err


def test_train_reports_accuracy_on_the_test_split_when_the_data_has_one(tmp_path, capsys):
    path = write_project(tmp_path, dataset={"kind": "shapes", "train_size": 120, "test_size": 40})
    assert cli.main(["train", str(path), "--quiet"]) == 0
    last = capsys.readouterr()[0].splitlines()[-1]
    assert last.startswith("test accuracy ") and last.endswith(" of 40 images of the dataset's test split)")
    correct = int(last.split("(")[1].split(" of ")[0])
    assert 0 <= correct <= 40 and last.split()[2] == f"{100 * correct / 40:.1f}%"


def test_train_epochs_out_and_quiet(tmp_path, capsys):
    path = write_project(tmp_path)
    out_path = tmp_path / "custom.npz"
    assert cli.main(["train", str(path), "--epochs", "1", "--out", str(out_path), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert sum(line.startswith("epoch ") for line in out.splitlines()) == 1
    assert err == ""
    assert out_path.is_file() and not (tmp_path / "tiny.weights.npz").exists()


def test_train_ctrl_c_stops_after_the_batch_and_still_saves(tmp_path, capsys, monkeypatch):
    path = write_project(tmp_path, epochs=50)
    real_batch = cli_train.Progress.batch

    def press_ctrl_c(self, event, total):
        if event.epoch == 2 and event.batch == 1:
            signal.raise_signal(signal.SIGINT)  # runs our handler, as a real Ctrl+C would
        real_batch(self, event, total)

    monkeypatch.setattr(cli_train.Progress, "batch", press_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["train", str(path)]) == 130
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    out, err = capsys.readouterr()
    assert "stopping after this batch" in err
    assert out.splitlines()[-1] == f"stopped after 1 complete epoch; weights saved to {tmp_path / 'tiny.weights.npz'}"
    assert load_weights(tmp_path / "tiny.weights.npz")[1]["dense1.bias"].shape == (10,)


def test_train_divergence_exits_1_without_writing(tmp_path, capsys):
    path = write_project(tmp_path, epochs=20)
    doc = json.loads(path.read_text())
    doc["training"].update(loss="squared_error", optimizer="sgd", learning_rate=1e6)
    doc["blocks"][-1]["activation"] = "identity"
    path.write_text(json.dumps(doc))
    assert cli.main(["train", str(path), "--quiet"]) == 1
    _, err = capsys.readouterr()
    assert "training diverged at epoch" in err and "lower learning rate" in err and "no weights written" in err
    assert not (tmp_path / "tiny.weights.npz").exists()


def test_progress_bar_rewrites_one_line_on_a_terminal():
    stream = io.StringIO()
    bar = cli_train.Progress(stream, tty=True, interval=0.0)
    from netbuilder.core.trainer import BatchEnd

    bar.batch(BatchEnd(1, 2, 4, 0.5, 0.25, 1234.0, 64), total_epochs=3)
    bar.clear()
    text = stream.getvalue()
    assert text.startswith("\repoch 1/3 [############............] 2/4  loss 0.5000  1,234 images/s")
    assert text.endswith("\r\x1b[K") and "\n" not in text


def test_train_invalid_project_exits_2_listing_every_problem(tmp_path, capsys):
    path = write_project(tmp_path, blocks=[{"kind": "conv", "filters": 0}, {"kind": "dense", "units": 10,
                                                                          "activation": "relu"}])
    assert cli.main(["train", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"netbuilder: {path}: ")
    assert "filters" in err and "softmax" in err  # two independent problems, both reported
    assert "Traceback" not in err


def test_train_missing_file_exits_1(tmp_path, capsys):
    missing = tmp_path / "missing.json"
    assert cli.main(["train", str(missing)]) == 1
    assert capsys.readouterr().err == f"netbuilder: {missing}: no such file\n"


def test_train_not_json_exits_2(tmp_path, capsys):
    path = tmp_path / "notes.json"
    path.write_text("this is not JSON")
    assert cli.main(["train", str(path)]) == 2
    assert "invalid JSON at line 1, column 1" in capsys.readouterr().err


def test_train_bad_dataset_exits_1(tmp_path, capsys):
    path = write_project(tmp_path, dataset={"kind": "shapes", "train_size": -5})
    assert cli.main(["train", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"netbuilder: cannot load the dataset of {path}: ")
    assert "train_size must be an integer >= 1, got -5" in err


def test_train_dataset_shape_mismatch_exits_1(tmp_path, capsys):
    path = write_project(tmp_path, input_shape=[1, 14, 14])
    assert cli.main(["train", str(path)]) == 1
    assert "images are 1 x 28 x 28" in capsys.readouterr().err


def test_train_output_folder_missing_exits_1_before_training(tmp_path, capsys):
    path = write_project(tmp_path)
    assert cli.main(["train", str(path), "--out", str(tmp_path / "nowhere" / "w.npz")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "does not exist" in err


@pytest.mark.parametrize("args,message", [(["--epochs", "0"], "must be at least 1, got 0"),
                                          (["--epochs", "two"], "expected a whole number, got 'two'")])
def test_train_bad_options_exit_2(tmp_path, capsys, args, message):
    path = write_project(tmp_path)
    assert cli.main(["train", str(path), *args]) == 2
    assert message in capsys.readouterr().err


# --- summary ----------------------------------------------------------------------------------
def test_summary_of_an_example(capsys):
    assert cli.main(["summary", str(EXAMPLES / "lenet5.json")]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "dense" in out


def test_summary_prints_every_problem_and_exits_2(tmp_path, capsys):
    path = write_project(tmp_path, blocks=[{"kind": "pool", "size": 40},
                                           {"kind": "dense", "units": 3, "activation": "tanh"}])
    assert cli.main(["summary", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    problems = [line for line in err.splitlines() if line.startswith("  error: ")]
    assert len(problems) >= 2, err
    assert "block 1" in err


def test_summary_missing_file_exits_1(tmp_path, capsys):
    assert cli.main(["summary", str(tmp_path / "x.json")]) == 1
    assert "no such file" in capsys.readouterr().err


# --- the command line itself --------------------------------------------------------------------
def test_help(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "netbuilder train PROJECT" in out and "summary" in out
    assert cli.main(["train", "--help"]) == 0
    assert "--epochs N" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys):
    assert cli.main(["fly", "x"]) == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err


def test_no_arguments_open_the_app_through_its_entry_point(monkeypatch):
    opened, asked = [], []

    def fake_entry(name):
        asked.append(name)
        return lambda path: opened.append(path) or 0

    monkeypatch.setattr(cli, "app_entry", fake_entry)
    assert cli.main([]) == 0
    assert cli.main(["some/project.JSON"]) == 0
    assert opened == [None, "some/project.JSON"] and asked == ["window", "window"]


def test_the_installed_entry_points_name_the_app():
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group="netbuilder.gui")}
    assert found == {"window": "netbuilder.gui.app:main", "diagram": "netbuilder.gui.diagram:export_diagram_file"}


def test_app_not_installed(monkeypatch, capsys):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    assert cli.main([]) == 1
    assert "the app is not installed" in capsys.readouterr().err


def test_app_dependency_missing_is_not_hidden(monkeypatch, capsys):
    import importlib.metadata

    class Broken:
        name = "window"

        def load(self):
            raise ModuleNotFoundError("No module named 'PySide6'", name="PySide6")

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [Broken()])
    assert cli.main([]) == 1
    assert "cannot start the app: No module named 'PySide6'" in capsys.readouterr().err


def test_trained_weights_reproduce_bit_for_bit(tmp_path, capsys):
    path = write_project(tmp_path)
    assert cli.main(["train", str(path), "--out", str(tmp_path / "a.npz"), "--quiet"]) == 0
    assert cli.main(["train", str(path), "--out", str(tmp_path / "b.npz"), "--quiet"]) == 0
    a, b = load_weights(tmp_path / "a.npz")[1], load_weights(tmp_path / "b.npz")[1]
    assert all(np.array_equal(a[k], b[k]) for k in a)
