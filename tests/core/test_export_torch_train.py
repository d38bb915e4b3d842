"""PyTorch training script export: train.py beside model.py, run without netbuilder, trains as the app does.

Tolerances: the script runs torch's float32 arithmetic on the app's data, order and initial
weights, so it is the torch engine's run; against the numpy engine the losses agree within a
relative 5e-5 and the weights within rtol 1e-4 / atol 5e-5, the tolerances the torch engine's
parity tests use (README: Engines). Accuracies are counts over the same images from weights that
close: they are allowed one image's difference (a sample on a decision boundary), no more.
"""
from __future__ import annotations

import ast
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from netbuilder.core import cli
from netbuilder.core.datasets import load_project_dataset
from netbuilder.core.export import ExportError, export, train_script
from netbuilder.core.export.torch_train_export import _load_script, absolute_data_paths, export_torch_train
from netbuilder.core.network import Network
from netbuilder.core.project import Project, load_project
from netbuilder.core.trainer import Trainer
from netbuilder.core.weights import save_weights
from tests.core.test_idx import make_set

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
SHAPES = {"kind": "shapes", "train_size": 600, "test_size": 200}
LOSS_RTOL = 5e-5
WEIGHT_RTOL, WEIGHT_ATOL = 1e-4, 5e-5

# Runs train.py as "python train.py" would (its folder first on sys.path), with every import of
# netbuilder refused, so the script cannot lean on the app even though it is installed here.
NO_NETBUILDER = """
import runpy, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "netbuilder" or name.startswith("netbuilder."):
            raise ImportError("train.py imported " + name)
sys.meta_path.insert(0, Refuse())
folder, argv = sys.argv[1], sys.argv[2:]
sys.path[0] = folder
sys.argv = [folder + "/train.py", *argv]
runpy.run_path(folder + "/train.py", run_name="__main__")
assert not [m for m in sys.modules if m.startswith("netbuilder")]
"""


def _lenet_project(tmp_path, **training):
    spec = json.loads((ROOT / "resources" / "examples" / "lenet5.json").read_text())
    spec["dataset"] = dict(SHAPES)
    spec["training"].update(training)
    path = tmp_path / "lenet5.json"
    path.write_text(json.dumps(spec))
    return path


def _run_script(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["OMP_NUM_THREADS"] = "1"  # the test machine's two cores are shared with the app's side
    return subprocess.run([sys.executable, "-c", NO_NETBUILDER, str(folder), *args], env=env, cwd=folder,
                          capture_output=True, text=True, timeout=120)


def _assert_same_weights(state: dict, network) -> None:
    ours = network.state_dict()
    assert set(state) == set(ours)
    for name, value in ours.items():
        np.testing.assert_allclose(np.asarray(state[name], np.float64), value, rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL,
                                   err_msg=name)


@pytest.mark.slow
def test_lenet5_script_trains_without_netbuilder_as_the_app_does(tmp_path, capsys):
    project_path = _lenet_project(tmp_path)
    out = tmp_path / "lenet_train"
    assert cli.main(["export", str(project_path), "--format", "torch-train", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PyTorch training script export verified with torch" in printed
    assert "first training step's loss" in printed
    assert sorted(p.name for p in out.iterdir()) == ["data.npz", "model.py", "train.py", "weights.pt"]
    source = (out / "train.py").read_text()
    imported = {a.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert imported == {"argparse", "gzip", "json", "math", "sys", "time", "pathlib", "numpy", "torch",
                        "torch.nn.functional", "model"}

    run = _run_script(out, "--epochs", "1", "--device", "cpu", "--out", "trained.pt", "--history", "history.json")
    assert run.returncode == 0, run.stderr
    assert "test accuracy" in run.stdout
    history = json.loads((out / "history.json").read_text())
    state = torch.load(str(out / "trained.pt"), weights_only=True)

    project = load_project(project_path)
    dataset = load_project_dataset(project, tmp_path)
    trainer = Trainer(project, dataset)
    app = trainer.fit(epochs=1)
    net = trainer.network
    np.testing.assert_allclose(list(itertools.chain(*history["batch_losses"])),
                               list(itertools.chain(*app.batch_losses)), rtol=LOSS_RTOL)
    _assert_same_weights({k: v.numpy() for k, v in state.items()}, net)
    epoch = history["epochs"][0]
    val = len(trainer.val_idx)
    assert abs(epoch["val_accuracy"] - app.epochs[0].val_accuracy) <= 1 / val + 1e-12
    assert epoch["loss"] == pytest.approx(app.epochs[0].train_loss, rel=LOSS_RTOL)
    test_accuracy = float((net.classify(net.predict(dataset.x_test)) == dataset.y_test).mean())
    assert abs(history["test_accuracy"] - test_accuracy) <= 1 / len(dataset.y_test) + 1e-12

    # The exported initial weights are the app's for the seed; model.py still predicts probabilities.
    initial = torch.load(str(out / "weights.pt"), weights_only=True)
    fresh = Network(load_project(project_path))
    for name, value in fresh.state_dict().items():
        np.testing.assert_array_equal(initial[name].numpy(), value)


def _script_of(folder: Path):
    return _load_script(folder / "train.py", folder / "model.py")


def _train_in_process(folder: Path, epochs: int):
    script, model = _script_of(folder)
    net = model.Net()
    net.load_state_dict(torch.load(str(folder / "weights.pt"), weights_only=True))
    data = script.load_data(folder)
    with torch.random.fork_rng(devices=[]):
        history = script.train(net, data, epochs=epochs, device="cpu", log=None)
    return net, history


XOR = {"format": 2, "name": "xor-ish", "input_shape": [2, 1, 1], "num_classes": None,
       "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 6, "activation": "tanh"},
                  {"kind": "batchnorm"}, {"kind": "dense", "units": 2, "activation": "softmax"}],
       "training": {"loss": "cross_entropy", "optimizer": "adam", "learning_rate": 0.05, "momentum": 0.9,
                    "weight_decay": 0.0, "batch_size": 3, "epochs": 3, "validation_fraction": 0.25, "seed": 3},
       "dataset": {"kind": "xor", "repeat": 5}}


@pytest.mark.parametrize("settings", [
    {"optimizer": "nesterov", "weight_decay": 1e-3},
    {"optimizer": "momentum", "loss": "squared_error"},
    {"optimizer": "sgd", "loss": "binary_cross_entropy", "num_classes": 1, "units": 1},
    {"optimizer": "adam", "weight_decay": 1e-2, "batch_size": 13},  # a last batch of one: BatchNorm's running stats
], ids=["nesterov-decay", "momentum-squared", "sgd-binary", "adam-decay-batch-of-one"])
def test_every_optimiser_and_loss_trains_as_the_app_does(tmp_path, settings):
    spec = json.loads(json.dumps(XOR))
    settings = dict(settings)
    if "units" in settings:
        spec["blocks"][-1] = {"kind": "dense", "units": settings.pop("units"), "activation": "sigmoid"}
    if "num_classes" in settings:
        spec["num_classes"] = settings.pop("num_classes")
    spec["training"].update(settings)
    project = Project.from_dict(spec)
    report = export(Network(project), tmp_path / "out", "torch-train")
    assert report.passed, report
    assert (tmp_path / "out" / "data.npz").is_file()
    net, history = _train_in_process(tmp_path / "out", 3)
    if spec["training"]["batch_size"] == 13:
        assert _script_of(tmp_path / "out")[0].ONE_VALUE_NORMS == ["batchnorm1"]
        assert [len(b) for b in history["batch_losses"]] == [2, 2, 2]  # 14 training rows: 13, then 1

    trainer = Trainer(Project.from_dict(spec), load_project_dataset(project))
    app = trainer.fit(epochs=3)
    np.testing.assert_allclose(list(itertools.chain(*history["batch_losses"])),
                               list(itertools.chain(*app.batch_losses)), rtol=LOSS_RTOL, atol=1e-7)
    _assert_same_weights({k: v.detach().numpy() for k, v in net.state_dict().items()}, trainer.network)
    assert [e["val_accuracy"] for e in history["epochs"]] == [e.val_accuracy for e in app.epochs]


def test_idx_files_are_read_where_they_are_with_plain_numpy(tmp_path):
    make_set(tmp_path / "digits", n=30, h=5, w=4, classes=3, gz=True)
    spec = {"format": 2, "name": "idx", "input_shape": [1, 5, 4], "num_classes": 3,
            "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 3, "activation": "softmax"}],
            "training": {"batch_size": 8, "epochs": 2, "seed": 1, "validation_fraction": 0.2},
            "dataset": {"kind": "idx", "path": "digits"}}
    (tmp_path / "p.json").write_text(json.dumps(spec))
    project = Project.from_dict(spec)
    report = export_torch_train(Network(project), tmp_path / "out", base_dir=tmp_path)
    assert report.passed, report
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["model.py", "train.py", "weights.pt"]  # no copy of the data
    script, _ = _script_of(out)
    assert script.DATA["source"] == "idx"
    assert Path(script.DATA["train_images"]).is_absolute()
    data = script.load_data()
    dataset = load_project_dataset(project, tmp_path)
    np.testing.assert_array_equal(data["x_train"], dataset.x_train)
    np.testing.assert_array_equal(data["y_test"], dataset.y_test)

    # the window's way: relative paths made absolute on its copy of the project, then export()
    project = Project.from_dict(spec)
    absolute_data_paths(project, tmp_path)
    assert Path(project.dataset["path"]).is_absolute()
    assert export(Network(project), tmp_path / "again", "torch-train").passed


def test_an_image_folder_with_its_own_validation_split_is_snapshotted(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for c in ("cat", "dog"):
            for i in range(n):
                (tmp_path / "pics" / split / c).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (6, 6)).astype(np.uint8)).save(
                    tmp_path / "pics" / split / c / f"{i}.png")
    spec = {"format": 2, "name": "pics", "input_shape": [1, 6, 6], "num_classes": 2,
            "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "softmax"}],
            "training": {"batch_size": 4, "epochs": 2},
            "dataset": {"kind": "folder", "path": "pics", "class_order": "sorted"}}
    project = Project.from_dict(spec)
    assert export_torch_train(Network(project), tmp_path / "out", base_dir=tmp_path).passed
    with np.load(tmp_path / "out" / "data.npz", allow_pickle=False) as f:
        assert sorted(f.files) == ["class_names", "x_train", "x_val", "y_train", "y_val"]
        assert list(f["class_names"]) == ["cat", "dog"]
    script, _ = _script_of(tmp_path / "out")
    x, y, train_idx, val_idx = script.prepare(script.load_data(tmp_path / "out"))
    assert list(train_idx) == list(range(12)) and list(val_idx) == [12, 13, 14, 15]


def test_a_folder_too_large_to_snapshot_is_refused_before_any_image_is_converted(tmp_path, monkeypatch):
    from PIL import Image

    from netbuilder.core.datasets.mapped import MappedImages
    from netbuilder.core.export import torch_train_export

    for c in ("cat", "dog"):
        (tmp_path / "pics" / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((6, 6), 40 * i, np.uint8)).save(tmp_path / "pics" / c / f"{i}.png")
    monkeypatch.setenv("NETBUILDER_MAP_DATA_ABOVE", "0")  # the folder is read as a set larger than memory
    monkeypatch.setenv("NETBUILDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(torch_train_export, "MAX_DATA_BYTES", 100)
    converted = []
    monkeypatch.setattr(MappedImages, "__array__", lambda self, *a, **k: converted.append(len(self)))
    spec = {"format": 2, "name": "pics", "input_shape": [1, 6, 6], "num_classes": 2,
            "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "softmax"}],
            "training": {"batch_size": 4, "epochs": 1},
            "dataset": {"kind": "folder", "path": "pics", "class_order": "sorted"}}
    with pytest.raises(ExportError, match="would write 0.0 GiB of images"):
        export_torch_train(Network(Project.from_dict(spec)), tmp_path / "out", base_dir=tmp_path)
    assert converted == [] and not (tmp_path / "out").exists()


def test_missing_data_is_named_and_nothing_is_written(tmp_path):
    spec = json.loads(json.dumps(XOR))
    spec["dataset"] = {"kind": "npz", "path": "nowhere.npz"}
    with pytest.raises(ExportError, match="needs the project's data"):
        export_torch_train(Network(Project.from_dict(spec)), tmp_path / "out", base_dir=tmp_path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("optimizer, right, wrong", [
    ("adam", "lr=LEARNING_RATE, betas", "lr=LEARNING_RATE * 50, betas"),
    ("nesterov", 'nesterov=OPTIMIZER == "nesterov"', "nesterov=False"),
], ids=["learning-rate", "nesterov"])
def test_a_script_that_trains_otherwise_is_not_written(tmp_path, monkeypatch, optimizer, right, wrong):
    body = train_script.BODY.replace(right, wrong)
    assert body != train_script.BODY
    monkeypatch.setattr(train_script, "BODY", body)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "train.py").write_text("old")
    spec = json.loads(json.dumps(XOR))
    spec["training"]["optimizer"] = optimizer
    with pytest.raises(ExportError, match="does not train as the app does") as caught:
        export(Network(Project.from_dict(spec)), tmp_path / "out", "torch-train")
    assert caught.value.report is not None and not caught.value.report.passed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train.py"]
    assert (tmp_path / "out" / "train.py").read_text() == "old"


def test_cli_torch_train_without_weights_and_the_others_still_need_them(tmp_path, capsys):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(XOR))
    assert cli.main(["export", str(path), "--format", "torch", "-o", str(tmp_path / "t")]) == 2
    assert "needs the trained WEIGHTS" in capsys.readouterr().err
    # with WEIGHTS, the script starts from them
    trainer = Trainer(load_project(path), load_project_dataset(load_project(path)))
    trainer.fit(epochs=1)
    save_weights(tmp_path / "w.npz", trainer.network, trainer.project)
    assert cli.main(["export", str(path), str(tmp_path / "w.npz"), "--format", "torch-train",
                     "-o", str(tmp_path / "cont")]) == 0
    initial = torch.load(str(tmp_path / "cont" / "weights.pt"), weights_only=True)
    for name, value in trainer.network.state_dict().items():
        np.testing.assert_array_equal(initial[name].numpy(), value)


def test_model_py_gives_logits_on_request_and_probabilities_by_default(tmp_path):
    assert export(Network(Project.from_dict(XOR)), tmp_path / "out", "torch-train").passed
    _, model = _script_of(tmp_path / "out")
    net = model.Net()
    net.load_state_dict(torch.load(str(tmp_path / "out" / "weights.pt"), weights_only=True))
    net.eval()
    x = torch.rand(5, 2, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(net(x, logits=True), dim=1), net(x))


def test_dropout_is_off_for_the_check_and_the_script_repeats_itself(tmp_path):
    spec = json.loads(json.dumps(XOR))
    spec["blocks"].insert(2, {"kind": "dropout", "rate": 0.5})
    report = export(Network(Project.from_dict(spec)), tmp_path / "out", "torch-train")
    assert report.passed, report
    first, again = _train_in_process(tmp_path / "out", 2), _train_in_process(tmp_path / "out", 2)
    assert first[1]["batch_losses"] == again[1]["batch_losses"]  # torch's generator, seeded with SEED


def test_adam_through_a_deeper_net_is_checked_in_float64(tmp_path):
    # In float32 one Adam step moves a weight whose gradient is about eps either way, and the
    # predictions after it differed by 5e-4 here; the float64 step agrees to rounding.
    project = load_project(ROOT / "resources" / "examples" / "small_vgg.json")
    project.dataset = {"kind": "shapes", "train_size": 300, "test_size": 20}
    report = export(Network(project), tmp_path / "out", "torch-train")
    assert report.passed and report.max_abs_diff < 1e-6, report


def test_a_script_whose_first_step_diverges_fails_the_export_as_an_error(tmp_path, monkeypatch):
    body = train_script.BODY.replace("value = float(loss.item())", 'value = float("nan")')
    assert body != train_script.BODY
    monkeypatch.setattr(train_script, "BODY", body)
    with pytest.raises(ExportError, match="could not take a first training step.*diverged at epoch 1, batch 1"):
        export(Network(Project.from_dict(XOR)), tmp_path / "out", "torch-train")
    assert not (tmp_path / "out").exists()
