"""The run history: each run of a project file recorded in <stem>.runs/<id>/, read back, compared."""
import csv
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from netbuilder.core import cli, run_history
from netbuilder.core.project import load_project
from netbuilder.core.run_history import (
    BATCH_COLUMNS,
    EPOCH_COLUMNS,
    RunRecorder,
    list_runs,
    runs_folder,
    settings_diff,
)
from netbuilder.core.trainer import BatchEnd, EpochEnd, RunEnded
from netbuilder.core.training_run import TrainingRun
from netbuilder.core.weights import WeightsError, load_weights


def write_project(folder, name="tiny", epochs=2, **training):
    doc = {
        "format": 2, "name": name, "input_shape": [1, 28, 28], "num_classes": 10,
        "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "softmax"}],
        "training": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 32, "epochs": epochs,
                     "validation_fraction": 0.2, "seed": 0, **training},
        "dataset": {"kind": "shapes", "train_size": 120, "test_size": 0},
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def record(path, **changes):
    """Train the project file ``path`` once (with ``changes`` to its training), recorded; (run, events)."""
    project = load_project(path)
    for key, value in changes.items():
        setattr(project.training, key, value)
    run = TrainingRun(project, path.parent, record_to=path)
    events = list(run.events())
    return run, events


# --- recording ---------------------------------------------------------------------------------
def test_a_run_is_recorded_with_its_settings_metrics_weights_and_confusion(tmp_path):
    path = write_project(tmp_path, early_stopping={"patience": 5})
    run, events = record(path)
    folder = run.recorded
    assert folder.parent == tmp_path / "tiny.runs" and run.record_problem == ""
    assert sorted(p.name for p in folder.iterdir()) == ["batches.csv", "best.npz", "confusion.json", "epochs.csv",
                                                        "run.json", "weights.npz"]
    data = json.loads((folder / "run.json").read_text())
    assert data["id"] == folder.name and data["format"] == 1
    assert data["status"] == "finished" and data["message"] == "finished 2 epochs"
    assert data["engine"] == "numpy engine on cpu" and data["seconds"] >= 0
    # the settings as the run began: the file's, without the normalisation training computed
    assert data["project"] == load_project(path).to_dict() and "normalization" not in data["project"]["dataset"]
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    best = max(e.val_accuracy for e in epochs)
    assert data["best_val_accuracy"] == best and data["best_epoch"] == next(e.epoch for e in epochs
                                                                             if e.val_accuracy == best)
    assert data["summary"].startswith(f"finished · 2 epochs · best val acc {100 * best:.1f}% (epoch ")

    with open(folder / "epochs.csv") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == EPOCH_COLUMNS and len(rows) == 3
    assert [float(v) for v in rows[2]] == [getattr(epochs[1], c) for c in EPOCH_COLUMNS]
    with open(folder / "batches.csv") as fh:
        batches = list(csv.reader(fh))
    assert tuple(batches[0]) == BATCH_COLUMNS
    assert len(batches) - 1 == sum(isinstance(e, BatchEnd) for e in events) == 8

    trainer = run.trainer()
    project, final = load_weights(folder / "weights.npz")
    assert "normalization" in project.dataset  # the weights carry what they were trained with
    for name, value in trainer.weights().items():
        assert np.array_equal(final[name], value)
    _, best_state = load_weights(folder / "best.npz")
    for name, value in trainer.early_stopping.best_weights.items():
        assert np.array_equal(best_state[name], value)
    assert data["best_weights_epoch"] == trainer.early_stopping.best_epoch

    confusion = json.loads((folder / "confusion.json").read_text())
    matrix = np.array(confusion["matrix"])
    assert confusion["epoch"] == 2 and matrix.shape == (10, 10) and matrix.sum() == 20  # the validation split
    assert np.trace(matrix) / 20 == epochs[-1].val_accuracy  # the very predictions of the last epoch's figure
    assert confusion["class_names"][:2] == ["circle", "square"]
    assert trainer.validation_observer is None  # the recorder let go of the trainer


def test_stopped_and_diverged_runs_are_recorded_with_their_status(tmp_path):
    path = write_project(tmp_path)
    project = load_project(path)
    run = TrainingRun(project, tmp_path, record_to=path)
    run.control.stop()
    assert list(run.events())[-1].status == "stopped"
    first = list_runs(path)[0][0]
    assert first.status == "stopped" and first.epochs == () and first.weights  # the initial weights
    doc = json.loads(path.read_text())
    doc["blocks"][-1]["activation"] = "identity"
    path.write_text(json.dumps(doc))
    run, events = record(path, loss="squared_error", optimizer="sgd", learning_rate=1e6, epochs=20)
    assert events[-1].status == "diverged"
    runs, notes = list_runs(path)
    assert [r.status for r in runs] == ["stopped", "diverged"] and notes == []
    assert runs[1].message.startswith("training diverged at epoch")


def test_unsaved_projects_and_the_no_path_run_record_nothing(tmp_path):
    run = TrainingRun(load_project(write_project(tmp_path)), tmp_path)
    list(run.events())
    assert run.recorded is None and run.record_problem == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json"]


def test_a_record_that_cannot_be_written_leaves_nothing_half_written(tmp_path, monkeypatch):
    path = write_project(tmp_path)

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_history, "write_table", full_disk)  # after the weights, before run.json
    run, events = record(path)
    assert events[-1].status == "finished"  # the run itself is not disturbed
    assert run.recorded is None
    assert run.record_problem == f"the run was not recorded in {tmp_path / 'tiny.runs'}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json"]  # no folder, no temporary one


def test_a_folder_being_written_is_not_listed_and_a_stale_one_is_cleared(tmp_path):
    path = write_project(tmp_path)
    run, _ = record(path)
    partial = run.recorded.with_name(f".{run.recorded.name[:-2]}-9.partial")
    shutil.copytree(run.recorded, partial)
    runs, notes = list_runs(path)
    assert [r.id for r in runs] == [run.recorded.name] and notes == []
    import os
    os.utime(partial, (0, 0))  # an hour old: its process is gone; the next record removes it
    record(path)
    assert not partial.exists() and len(list_runs(path)[0]) == 2


def test_run_ids_are_unique_and_sort_by_time_then_number(tmp_path):
    runs = tmp_path / "p.runs"
    runs.mkdir()
    moment = 1_800_000_000.0
    first, temp = run_history._reserve(runs, moment)
    temp.rename(runs / first)
    second, temp2 = run_history._reserve(runs, moment)
    third, _ = run_history._reserve(runs, moment)  # while the second is still being written
    assert first.endswith("-1") and second.endswith("-2") and third.endswith("-3")
    assert first[:-2] == second[:-2] and len(first) == len("20270115-080000-1")
    path = write_project(tmp_path, "p")
    recorded, _ = record(path)
    for number in (10, 2):  # the same start: the number orders them, 2 before 10
        copy = recorded.recorded.with_name(f"{recorded.recorded.name[:-2]}-{number}")
        shutil.copytree(recorded.recorded, copy)
    listed = [r.id.rsplit("-", 1)[1] for r in list_runs(path)[0]]
    assert listed == ["1", "2", "10"]


# --- reading back --------------------------------------------------------------------------------
def _spoil(folder, how):
    data = json.loads((folder / "run.json").read_text())
    if how == "bad json":
        (folder / "run.json").write_text("{\"format\": 1,")
    elif how == "no run.json":
        (folder / "run.json").unlink()
    elif how == "wrong type":
        data["seconds"] = "fast"
        (folder / "run.json").write_text(json.dumps(data))
    elif how == "bad status":
        data["status"] = "exploded"
        (folder / "run.json").write_text(json.dumps(data))
    elif how == "newer format":
        data["format"] = 7
        (folder / "run.json").write_text(json.dumps(data))
    elif how == "not a project":
        data["project"]["blocks"] = "many"
        (folder / "run.json").write_text(json.dumps(data))
    elif how == "weights missing":
        (folder / "weights.npz").unlink()
    elif how == "epochs not numbers":
        (folder / "epochs.csv").write_text(",".join(EPOCH_COLUMNS) + "\n1,a,b,,,1,1\n")
    elif how == "NaN in json":
        (folder / "run.json").write_text(json.dumps(data).replace('"seconds": ', '"seconds": NaN, "x": '))


SPOILS = {"bad json": "run.json: not valid JSON", "no run.json": "run.json: no such file",
          "wrong type": "run.json: 'seconds' must be a number, got str",
          "bad status": "status 'exploded' is not one of", "newer format": "format 7 is from a newer netbuilder",
          "not a project": "run.json (its project): blocks must be a list", "weights missing": "weights.npz: missing",
          "epochs not numbers": "epochs.csv: line 2 holds something that is not a number",
          "NaN in json": "NaN is not a JSON number"}


def test_each_corrupt_run_folder_is_skipped_with_one_note_and_the_good_ones_listed(tmp_path):
    path = write_project(tmp_path)
    good, _ = record(path)
    for how in SPOILS:
        folder = good.recorded.with_name(how.replace(" ", "-"))
        shutil.copytree(good.recorded, folder)
        _spoil(folder, how)
    (tmp_path / "tiny.runs" / "stray.txt").write_text("not a run")  # files beside the runs are not runs
    runs, notes = list_runs(path)
    assert [r.id for r in runs] == [good.recorded.name]
    assert len(notes) == len(SPOILS)
    for how, says in SPOILS.items():
        [note] = [n for n in notes if n.startswith(f"tiny.runs/{how.replace(' ', '-')} skipped: ")]
        assert says in note and "\n" not in note, note


def test_a_recorded_runs_weights_load_into_a_network_and_a_pickle_is_refused(tmp_path):
    path = write_project(tmp_path)
    run, _ = record(path)
    [recorded], _ = list_runs(path)
    assert not recorded.best  # no early stopping: the final weights are the ones to use
    network, which = recorded.network()
    assert which == "the final weights (epoch 2)"
    for name, value in run.trainer().weights().items():
        assert np.array_equal(network.state_dict()[name], value)
    assert recorded.settings().training.learning_rate == 0.01
    assert recorded.confusion()["matrix"].sum() == 20 and len(recorded.batches()) == 8
    import pickle
    (recorded.folder / "weights.npz").write_bytes(pickle.dumps({"dense1.weight": 1}))
    with pytest.raises(WeightsError, match="not a zip archive"):
        recorded.network()


def test_settings_diff_names_what_differs_by_dotted_key():
    def run(lr, filters, extra=None):
        training = {"learning_rate": lr, "batch_size": 64, **(extra or {})}
        blocks = [{"kind": "conv", "filters": 8}, {"kind": "relu"}, {"kind": "conv", "filters": filters}]
        return SimpleNamespace(project={"format": 2, "name": f"n{lr}", "input_shape": [1, 28, 28],
                                        "blocks": blocks, "training": training})

    runs = [run(0.01, 16), run(0.1, 16), run(0.01, 32, {"augmentation": {"flip": True}})]
    assert settings_diff(runs) == {"blocks[2].filters": [16, 16, 32], "training.learning_rate": [0.01, 0.1, 0.01],
                                   "training.augmentation.flip": [None, None, True]}
    assert settings_diff(runs[:1]) == {} and settings_diff([run(1, 2), run(1, 2)]) == {}


def test_recorder_fed_by_hand_records_a_run_that_failed_to_start(tmp_path):
    path = write_project(tmp_path)
    recorder = RunRecorder(path, load_project(path))
    recorder.event(RunEnded("failed", "training failed: ValueError: no", 0))
    [recorded], notes = list_runs(path)
    assert recorded.status == "failed" and not recorded.weights and notes == []
    assert recorded.weights_path() is None
    with pytest.raises(WeightsError, match="the run has no weights"):
        recorded.network()


# --- the command line -------------------------------------------------------------------------------
def test_cli_train_records_by_default_and_not_with_no_record(tmp_path, capsys):
    path = write_project(tmp_path)
    assert cli.main(["train", str(path)]) == 0
    out, err = capsys.readouterr()
    [folder] = (tmp_path / "tiny.runs").iterdir()
    assert err.splitlines()[-1] == f"run recorded in {folder}"  # the last line on stderr; stdout keeps the results
    assert out.splitlines()[-1] == f"finished 2 epochs; weights saved to {tmp_path / 'tiny.weights.npz'}"
    assert cli.main(["train", str(path), "--quiet", "--epochs", "1"]) == 0  # recorded, quietly
    assert capsys.readouterr().err == ""
    assert cli.main(["train", str(path), "--no-record", "--epochs", "1"]) == 0
    assert "recorded" not in capsys.readouterr().err
    assert len(list((tmp_path / "tiny.runs").iterdir())) == 2


def test_cli_runs_lists_the_runs_with_the_settings_that_differ_and_notes_skipped_folders(tmp_path, capsys):
    path = write_project(tmp_path)
    assert cli.main(["runs", str(path)]) == 0
    assert capsys.readouterr().out == f"no runs recorded in {runs_folder(path)} yet (netbuilder train {path} " \
                                      "records one)\n"
    record(path)
    record(path, learning_rate=0.05)
    (runs_folder(path) / "broken").mkdir()
    assert cli.main(["runs", str(path)]) == 0
    out, err = capsys.readouterr()
    header, first, second = out.splitlines()
    assert header.split() == ["id", "when", "status", "epochs", "best", "val", "acc", "time",
                              "training.learning_rate"]
    runs, _ = list_runs(path)
    for line, run in zip((first, second), runs):
        assert line.startswith(f"{run.id}  {run.when}  finished  2 ")
        assert f"{100 * run.best_val_accuracy:.1f}% (epoch {run.best_epoch})" in line
    assert first.endswith("0.01") and second.endswith("0.05")
    assert err == "netbuilder: note: tiny.runs/broken skipped: run.json: no such file\n"


def test_cli_runs_of_a_bundled_example_says_they_are_not_recorded(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["runs", "xor"]) == 1
    assert "bundled example, whose runs are not recorded" in capsys.readouterr().err
    assert cli.main(["train", "xor", "--epochs", "1", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xor.weights.npz"]  # nothing recorded
