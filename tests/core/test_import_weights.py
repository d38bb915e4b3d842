"""Importing weights into a matching project: from the engine's .npz, a checkpoint, and an exported
PyTorch state_dict; every mismatch named with its block and both shapes; bad files refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from netbuilder.core.checkpoint import save_checkpoint
from netbuilder.core.export import export, import_weights, read_weights
from netbuilder.core.network import Network
from netbuilder.core.trainer import Trainer
from netbuilder.core.weights import WeightsError, save_weights
from tests.core.test_export_onnx import _conv, _pool, case_project
from tests.core.test_trainer import blobs, mlp_project


def _project(filters=3, units=4):
    return case_project([_conv(filters=filters), _pool("max"), {"kind": "dense", "units": units,
                                                                 "activation": "relu"}])


def _params(net):
    return {k: v.copy() for k, v in net.parameters().items()}


def _fresh(project, seed=99):
    return Network(project, rng=np.random.default_rng(seed))


def test_from_the_engine_npz(tmp_path):
    src = Network(_project())
    save_weights(tmp_path / "w.npz", src, src.project)
    dst = _fresh(src.project)
    import_weights(dst, tmp_path / "w.npz")
    assert all(np.array_equal(dst.parameters()[k], v) for k, v in src.parameters().items())


def test_from_an_exported_pytorch_state_dict(tmp_path):
    src = Network(_project())
    export(src, tmp_path / "torch", "torch")
    dst = _fresh(src.project)
    import_weights(dst, tmp_path / "torch" / "weights.pt")
    assert all(np.array_equal(dst.parameters()[k], v) for k, v in src.parameters().items())
    assert set(read_weights(tmp_path / "torch" / "weights.pt")) == set(src.parameters())


def test_a_state_dict_from_plain_torch_code(tmp_path):
    """Keys "<block>.weight" from a torch model written by hand load too (and float64 is converted)."""
    project = case_project([], input_shape=(1, 2, 2), classes=3)
    linear = torch.nn.Linear(4, 3).double()
    torch.save({"dense1.weight": linear.weight.data, "dense1.bias": linear.bias.data}, tmp_path / "hand.pth")
    net = _fresh(project)
    import_weights(net, tmp_path / "hand.pth")
    np.testing.assert_array_equal(net.parameters()["dense1.weight"], linear.weight.detach().numpy().astype(np.float32))
    assert net.parameters()["dense1.weight"].dtype == np.float32


def test_from_a_checkpoint(tmp_path):
    trainer = Trainer(mlp_project(), blobs())
    trainer.fit(epochs=1)
    save_checkpoint(tmp_path / "ck.npz", trainer.checkpoint())
    net = _fresh(mlp_project())
    import_weights(net, tmp_path / "ck.npz")
    assert all(np.array_equal(net.parameters()[k], v) for k, v in trainer.network.parameters().items())


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_another_network_names_the_block_and_both_shapes_and_changes_nothing(tmp_path, suffix):
    other = Network(_project(filters=5, units=6))
    if suffix == ".npz":
        save_weights(tmp_path / "w.npz", other, other.project)
    else:
        export(other, tmp_path / "t", "torch")
        (tmp_path / "t" / "weights.pt").rename(tmp_path / "w.pt")
    net = _fresh(_project())
    before = _params(net)
    with pytest.raises(WeightsError) as info:
        import_weights(net, tmp_path / f"w{suffix}")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / f'w{suffix}'}: the weights do not fit this network: ")
    assert "block 1 (conv 'conv1'): conv1.weight is (5 x 2 x 3 x 3) in the file, the network needs (3 x 2 x 3 x 3)" \
        in message
    assert "block 3 (dense 'dense1'): dense1.weight is (6 x 20) in the file, the network needs (4 x 12)" in message
    assert all(np.array_equal(net.parameters()[k], v) for k, v in before.items())


def test_missing_and_unexpected_parameters(tmp_path):
    net = _fresh(_project())
    state = {k: torch.from_numpy(v) for k, v in net.parameters().items() if k != "dense2.bias"}
    state["head.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(WeightsError) as info:
        import_weights(net, tmp_path / "w.pt")
    assert "block 5 (dense 'dense2'): dense2.bias (3) is missing from the file" in str(info.value)
    assert "the file has head.weight (2 x 2), which this network does not" in str(info.value)


@pytest.mark.parametrize("content,message", [
    (None, "not a readable PyTorch state_dict"),  # truncated
    (b"garbage", "not a readable PyTorch state_dict"),
    ("list", "expected a state_dict (a dict of parameter name -> tensor), got list"),
])
def test_bad_pytorch_files(tmp_path, content, message):
    path = tmp_path / "w.pt"
    if content is None:
        export(Network(_project()), tmp_path / "t", "torch")
        path.write_bytes((tmp_path / "t" / "weights.pt").read_bytes()[:300])
    elif content == "list":
        torch.save([torch.zeros(2)], path)
    else:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match="^" + str(path).replace("\\", "\\\\") + ": ") as info:
        import_weights(_fresh(_project()), path)
    assert message in str(info.value)


def test_truncated_npz_and_missing_files(tmp_path):
    net = Network(_project())
    save_weights(tmp_path / "w.npz", net, net.project)
    (tmp_path / "cut.npz").write_bytes((tmp_path / "w.npz").read_bytes()[:500])
    with pytest.raises(WeightsError, match="truncated"):
        import_weights(net, tmp_path / "cut.npz")
    with pytest.raises(WeightsError, match="no such file"):
        import_weights(net, tmp_path / "nothing.pt")
    with pytest.raises(WeightsError, match="no such file"):
        import_weights(net, tmp_path / "nothing.npz")
