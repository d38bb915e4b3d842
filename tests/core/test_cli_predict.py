"""netbuilder predict and evaluate, in-process, on a LeNet-5 trained for one epoch of shapes."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from netbuilder.core import cli
from netbuilder.core.datasets import load_project_dataset, train_val_split
from netbuilder.core.datasets.folder import load_image
from netbuilder.core.network import Network
from netbuilder.core.resources import example_path
from netbuilder.core.weights import load_into, load_weights


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(project file, weights file, the trained network, its dataset), trained once for the module."""
    folder = tmp_path_factory.mktemp("lenet")
    doc = json.loads(example_path("lenet5").read_text())
    doc["dataset"] = {"kind": "shapes", "train_size": 300, "test_size": 100}
    doc["training"].update(epochs=1, batch_size=32)
    path = folder / "lenet.json"
    path.write_text(json.dumps(doc))
    assert cli.main(["train", str(path), "--quiet"]) == 0
    weights = folder / "lenet.weights.npz"
    project, _ = load_weights(weights)  # with the normalisation training stored
    net = Network(project)
    load_into(net, weights)
    return path, weights, net, load_project_dataset(project, folder)


def _run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _pngs(folder, dataset, count):
    """The first test images as 8-bit grey PNGs, and what the loader makes of each."""
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        p = folder / f"img{i:02d}.png"
        Image.fromarray(np.round(dataset.x_test[i, 0] * 255).astype(np.uint8)).save(p)
        paths.append(p)
    return paths, np.stack([load_image(p, (1, 28, 28)) for p in paths])


# --- evaluate ---------------------------------------------------------------------------------
def test_evaluate_agrees_with_a_direct_computation(trained, capsys):
    path, weights, net, ds = trained
    code, out, err = _run(capsys, "evaluate", path, weights, "--json")
    assert code == 0, err
    got = json.loads(out)
    outputs = net.predict(ds.x_test)
    predicted = outputs.argmax(axis=1)
    y = ds.y_test
    n, k = len(y), 10
    matrix = np.zeros((k, k), int)
    for t, p in zip(y, predicted):
        matrix[t, p] += 1
    assert got["split"] == "test" and got["total"] == n == 100
    assert got["confusion_matrix"] == matrix.tolist()
    assert got["accuracy"] == pytest.approx(np.mean(predicted == y))
    assert got["class_names"] == ds.class_names
    rows = got["per_class"]
    assert sum(r["support"] for r in rows) == n
    assert [r["support"] for r in rows] == matrix.sum(axis=1).tolist()  # rows sum to supports
    assert round(sum(r["recall"] * r["support"] for r in rows)) == got["correct"] == int(np.trace(matrix))
    for c, r in enumerate(rows):
        tp = matrix[c, c]
        assert r["precision"] == pytest.approx(tp / matrix[:, c].sum() if matrix[:, c].sum() else 0.0)
        assert r["recall"] == pytest.approx(tp / matrix[c].sum())
    assert got["weighted_avg"]["recall"] == pytest.approx(got["accuracy"])
    wrong = got["most_confidently_wrong"]
    assert wrong and [w["confidence"] for w in wrong] == sorted((w["confidence"] for w in wrong), reverse=True)
    for w in wrong:
        assert y[w["index"]] == w["true"] != w["predicted"] == predicted[w["index"]]
        assert w["confidence"] == pytest.approx(float(outputs[w["index"], w["predicted"]]))
    misses = np.flatnonzero(predicted != y)
    assert wrong[0]["confidence"] == pytest.approx(float(outputs[misses, predicted[misses]].max()))


def test_evaluate_on_the_validation_split_training_held_out(trained, capsys):
    path, weights, net, ds = trained
    code, out, _ = _run(capsys, "evaluate", path, weights, "--split", "val", "--json")
    assert code == 0
    got = json.loads(out)
    settings = net.project.training
    _, val = train_val_split(ds.y_train, settings.validation_fraction, settings.seed)
    predicted = net.predict(ds.x_train[val]).argmax(axis=1)
    assert got["split"] == "val" and got["total"] == len(val) > 0
    assert got["correct"] == int((predicted == ds.y_train[val]).sum())


def test_evaluate_prints_the_tables(trained, capsys):
    path, weights, _, ds = trained
    code, out, _ = _run(capsys, "evaluate", path, weights)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"evaluated 'LeNet-5' on the test split of {ds.name}: 100 images"
    assert lines[1].startswith("accuracy ") and lines[1].endswith(" of 100)")
    assert lines[3].split() == ["class", "precision", "recall", "f1", "support"]
    assert lines[4].split()[0] == ds.class_names[0] and lines[4].split()[-1] == "10"
    assert any(line.startswith("macro avg") for line in lines)
    assert any(line.startswith("weighted avg") for line in lines)
    assert "confusion matrix (rows: true class, columns: predicted class by number)" in lines


def test_evaluate_without_a_test_split_says_to_use_val(trained, capsys, tmp_path):
    path, weights, _, _ = trained
    doc = json.loads(path.read_text())
    doc["dataset"]["test_size"] = 0
    other = tmp_path / "notest.json"
    other.write_text(json.dumps(doc))
    code, out, err = _run(capsys, "evaluate", other, weights)
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [f"netbuilder: {other}: the dataset 'shapes' has no test split; evaluate on "
                                        "training's validation split with --split val"]


def test_evaluate_with_nothing_held_out_says_so(trained, capsys, tmp_path):
    path, weights, _, _ = trained
    doc = json.loads(path.read_text())
    doc["dataset"]["test_size"] = 0
    doc["training"]["validation_fraction"] = 0.0
    other = tmp_path / "nothing.json"
    other.write_text(json.dumps(doc))
    for split in ("test", "val"):
        code, out, err = _run(capsys, "evaluate", other, weights, "--split", split)
        assert code == 1 and out == ""
        assert err.strip().splitlines() == [
            f"netbuilder: {other}: the dataset 'shapes' has no test split and the project holds out no validation "
            "split (validation_fraction 0.0): no images were kept from training to evaluate on"]


def test_evaluate_bad_weights_exit_1(trained, capsys, tmp_path):
    path = trained[0]
    code, _, err = _run(capsys, "evaluate", path, tmp_path / "missing.npz")
    assert code == 1 and err.startswith("netbuilder: ") and "missing.npz" in err and "Traceback" not in err


# --- predict ----------------------------------------------------------------------------------
def test_predict_agrees_with_the_network_on_the_loaders_arrays(trained, capsys, tmp_path):
    path, weights, net, ds = trained
    paths, arrays = _pngs(tmp_path / "imgs", ds, 6)
    code, out, err = _run(capsys, "predict", path, weights, *paths, "--json", "--top", "3")
    assert code == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    want = net.predict(arrays)  # softmax outputs: the probabilities
    assert [g["file"] for g in got] == [str(p) for p in paths]
    for g, w in zip(got, want):
        top = np.argsort(-w, kind="stable")[:3]
        assert [p["index"] for p in g["predictions"]] == top.tolist()
        assert [p["class"] for p in g["predictions"]] == [ds.class_names[k] for k in top]
        np.testing.assert_allclose([p["probability"] for p in g["predictions"]], w[top], rtol=1e-6)


def test_predict_a_folder_and_a_bad_file_one_line_each_and_the_rest_run(trained, capsys, tmp_path):
    path, weights, net, ds = trained
    paths, arrays = _pngs(tmp_path / "imgs", ds, 3)
    (tmp_path / "imgs" / "broken.png").write_text("not a png")
    (tmp_path / "imgs" / "notes.txt").write_text("ignored: not an image extension")
    code, out, err = _run(capsys, "predict", path, weights, tmp_path / "missing.jpg", tmp_path / "imgs", "--top", "1")
    assert code == 1
    assert err.splitlines() == [
        f"netbuilder: {tmp_path / 'missing.jpg'}: no such file",
        f"netbuilder: {tmp_path / 'imgs' / 'broken.png'}: cannot be read as an image: "
        "not an image file Pillow can read",
    ]
    lines = out.splitlines()
    best = net.predict(arrays).argmax(axis=1)
    assert [line.split(": ")[0] for line in lines] == [str(p) for p in paths]  # sorted by name
    assert [line.split(": ")[1].rsplit(" ", 1)[0] for line in lines] == [ds.class_names[k] for k in best]
    assert all(line.endswith("%") for line in lines)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_predict_refuses_a_fifo_instead_of_hanging(trained, capsys, tmp_path):
    path, weights, _, _ = trained
    os.mkfifo(tmp_path / "pipe.png")
    code, out, err = _run(capsys, "predict", path, weights, tmp_path / "pipe.png")
    assert code == 1 and out == "" and err == f"netbuilder: {tmp_path / 'pipe.png'}: not a regular file\n"


def test_predict_converts_colour_and_names_classes_without_a_loadable_dataset(trained, capsys, tmp_path):
    path, weights, net, _ = trained
    doc = json.loads(path.read_text())
    doc["dataset"] = {"kind": "npz", "path": "gone.npz"}  # cannot be loaded: the classes get numbers
    other = tmp_path / "gone.json"
    other.write_text(json.dumps(doc))
    rgb = tmp_path / "colour.jpg"
    Image.fromarray((np.random.default_rng(1).random((40, 50, 3)) * 255).astype(np.uint8)).save(rgb)
    code, out, err = _run(capsys, "predict", other, weights, rgb, "--json", "--top", "99")
    assert code == 0, err
    got = json.loads(out)
    assert len(got["predictions"]) == 10
    assert {p["class"] for p in got["predictions"]} == {f"class {k}" for k in range(10)}
    # npz without normalisation in the project file: the weights' project brings it
    want = net.predict(load_image(rgb, (1, 28, 28))[None])[0]
    np.testing.assert_allclose([p["probability"] for p in got["predictions"]], np.sort(want)[::-1], rtol=1e-6)


def test_predict_help_names_the_exit_codes(capsys):
    assert cli.main(["predict", "--help"]) == 0
    text = " ".join(capsys.readouterr()[0].split())
    assert "1 when any could not be" in text and "--top K" in text and "--json" in text


def test_predict_takes_a_bundled_examples_name(trained, capsys, tmp_path):
    _, weights, net, ds = trained
    paths, arrays = _pngs(tmp_path / "imgs", ds, 1)
    code, out, err = _run(capsys, "predict", "lenet5", weights, paths[0], "--top", "1")
    assert code == 0 and "using the bundled example 'lenet5'" in err
    assert out == f"{paths[0]}: {ds.class_names[int(net.predict(arrays).argmax())]} " \
                  f"{100 * float(net.predict(arrays).max()):.1f}%\n"


def test_predict_resizes_as_an_image_folder_project_does_and_names_its_classes(capsys, tmp_path):
    rng = np.random.default_rng(2)
    for cls in ("cats", "dogs"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray((rng.random((12, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / "data" / cls / f"{i}.png")
    doc = {"format": 2, "name": "pets", "input_shape": [3, 8, 8], "num_classes": 2,
           "blocks": [{"kind": "flatten"}, {"kind": "dense", "units": 2, "activation": "softmax"}],
           "training": {"loss": "cross_entropy", "optimizer": "sgd", "learning_rate": 0.1, "batch_size": 4,
                        "epochs": 1, "validation_fraction": 0.2, "seed": 0},
           "dataset": {"kind": "folder", "path": "data", "resize": "crop", "class_order": "sorted"}}
    path = tmp_path / "pets.json"
    path.write_text(json.dumps(doc))
    assert cli.main(["train", str(path), "--quiet"]) == 0
    capsys.readouterr()
    weights = tmp_path / "pets.weights.npz"
    project, _ = load_weights(weights)
    net = Network(project)
    load_into(net, weights)
    image = tmp_path / "data" / "dogs" / "3.png"
    code, out, err = _run(capsys, "predict", path, weights, image, "--json")
    assert code == 0, err
    got = json.loads(out)["predictions"]
    want = net.predict(load_image(image, (3, 8, 8), "crop")[None])[0]
    assert {p["class"]: p["probability"] for p in got} == pytest.approx({"cats": want[0], "dogs": want[1]}, rel=1e-6)
