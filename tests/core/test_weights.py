"""Weights files: round trip, atomic writes, and clear errors for bad files and mismatches."""
import numpy as np
import pytest

from netbuilder.core.errors import ProjectError
from netbuilder.core.network import Network
from netbuilder.core.project import Project, TrainingSettings
from netbuilder.core.weights import PROJECT_KEY, WeightsError, load_into, load_weights, save_weights


def project(units=5, name="wts"):
    return Project(
        name=name, input_shape=(1, 6, 6), num_classes=3,
        blocks=[{"kind": "conv", "filters": 2, "kernel_size": 3, "activation": "relu"},
                {"kind": "dense", "units": units, "activation": "relu"},
                {"kind": "dense", "units": 3, "activation": "softmax"}],
        training=TrainingSettings(seed=7, learning_rate=0.02))


def test_round_trip_keeps_names_values_dtypes_and_project(tmp_path):
    p = project()
    net = Network(p)
    path = tmp_path / "model.weights.npz"
    save_weights(path, net, p)
    loaded_project, state = load_weights(path)
    assert loaded_project.to_dict() == p.to_dict()
    params = net.parameters()
    assert state.keys() == params.keys() == {"conv1.weight", "conv1.bias", "dense1.weight", "dense1.bias",
                                             "dense2.weight", "dense2.bias"}
    for k, v in params.items():
        assert state[k].dtype == v.dtype and np.array_equal(state[k], v)
    # Plain npz without pickles: the project is UTF-8 bytes.
    with np.load(path, allow_pickle=False) as raw:
        assert raw[PROJECT_KEY].dtype == np.uint8
        assert raw[PROJECT_KEY].tobytes().decode("utf-8") == p.to_json()
    assert [f.name for f in tmp_path.iterdir()] == ["model.weights.npz"]  # no temporary left behind


def test_state_dict_and_load_into_another_network(tmp_path):
    p = project()
    source = Network(p)
    path = tmp_path / "w.npz"
    save_weights(path, source.state_dict(), p)
    other = Network(p, rng=np.random.default_rng(99))
    assert not np.array_equal(other.parameters()["dense1.weight"], source.parameters()["dense1.weight"])
    assert load_into(other, path).name == "wts"
    for k, v in source.parameters().items():
        assert np.array_equal(other.parameters()[k], v)
    x = np.random.default_rng(0).random((2, 1, 6, 6), dtype=np.float32)
    np.testing.assert_array_equal(other.forward(x), source.forward(x))


def test_overwrite_replaces_the_old_file(tmp_path):
    p = project()
    path = tmp_path / "w.npz"
    save_weights(path, {"a": np.zeros(2, np.float32)}, p)
    save_weights(path, {"b": np.ones(3, np.float32)}, p)
    _, state = load_weights(path)
    assert list(state) == ["b"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["w.npz"]


def test_unicode_project_name_survives(tmp_path):
    p = project(name="réseau ✓")
    save_weights(tmp_path / "w.npz", {"a": np.zeros(1, np.float32)}, p)
    assert load_weights(tmp_path / "w.npz")[0].name == "réseau ✓"


def test_load_into_names_each_mismatch_with_both_shapes(tmp_path):
    path = tmp_path / "w.npz"
    save_weights(path, Network(project(units=5)), project(units=5))
    target = Network(project(units=4))
    before = {k: v.copy() for k, v in target.parameters().items()}
    with pytest.raises(WeightsError) as info:
        load_into(target, path)
    message = str(info.value)
    assert str(path) in message
    assert "block 2 (dense 'dense1'): dense1.weight is (5 x 32) in the file, the network needs (4 x 32)" in message
    assert "block 3 (dense 'dense2'): dense2.weight is (3 x 5) in the file, the network needs (3 x 4)" in message
    for k, v in target.parameters().items():  # untouched on error
        assert np.array_equal(v, before[k])


def test_load_into_missing_and_unexpected_parameters(tmp_path):
    p = project()
    state = Network(p).state_dict()
    state["extra.weight"] = state.pop("dense2.bias")[:2]
    path = tmp_path / "w.npz"
    save_weights(path, state, p)
    with pytest.raises(WeightsError, match=r"dense2.bias \(3\) is missing from the file; "
                                           r"the file has extra.weight \(2\), which this network does not"):
        load_into(Network(p), path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(WeightsError, match=f"{path}: no such file"):
        load_weights(path)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(WeightsError, match="is a folder"):
        load_weights(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello, not weights", b"PK\x03\x04garbage"])
def test_not_an_npz(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=f"{path}: not a valid weights file"):
        load_weights(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "w.npz"
    save_weights(path, Network(project()), project())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=f"{path}: not a valid weights file .*truncated"):
        load_weights(path)


def test_plain_npz_without_project(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.zeros(3))
    with pytest.raises(WeightsError, match="no project inside"):
        load_weights(path)


def test_single_npy_array(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(WeightsError, match="single .npy array"):
        load_weights(path)


def test_broken_embedded_project(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{PROJECT_KEY: np.frombuffer(b'{"format": 1, "blocks": 3', np.uint8)})
    with pytest.raises(ProjectError, match="embedded project.*invalid JSON"):
        load_weights(path)


def test_object_arrays_are_refused_on_load(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, **{PROJECT_KEY: np.frombuffer(project().to_json().encode(), np.uint8),
                      "w": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(WeightsError, match="not a valid weights file"):
        load_weights(path)


def test_unwritable_destination(tmp_path):
    with pytest.raises(WeightsError, match="cannot write the weights file"):
        save_weights(tmp_path / "no" / "such" / "folder.npz", {"a": np.zeros(1)}, project())
    assert list(tmp_path.iterdir()) == []


def test_reserved_name_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="reserved"):
        save_weights(tmp_path / "w.npz", {PROJECT_KEY: np.zeros(1)}, project())
