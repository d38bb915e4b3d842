"""Many processes (core/torch_distributed.py): two gloo processes on the CPU, started by torchrun
on 127.0.0.1, train to the weights of one process with the same global batch; every process ends
with the same weights; a stop asked of one process stops them all; ``netbuilder train
--processes 2`` writes its files once, from rank 0, and the weights export verified.

Tolerance. The two processes compute the same float32 formulas on the same images as one process,
but each gradient is summed in two halves (one a process) that DDP then adds, and each loss in
another order, so each step differs from one process's by float32 rounding (relative 1e-7), which
training feeds back. Over the 10 steps here (SGD with momentum) the largest gaps measured are a
relative 9e-8 in a batch loss and 1.8e-7 in a weight (weights of size 0.05 to 2); with BatchNorm,
against its one-process reference, 6e-8 and a relative 1e-7 (3.8e-6 in a running variance of
59). The tests allow losses rtol 1e-5 and weights rtol 1e-5 / atol 1e-5, fifty times that or
more, and still far below any real difference: an image left out or counted twice, or a shard
weighted wrongly, moves the loss and the weights by 1e-3 or more. Longer runs drift further in
float32 (LeNet-5 on shapes with momentum SGD, 169 steps: 2e-7 until step 12, then a max-pool near-tie or a ReLU
flips and training amplifies it, 0.05 at the end), while in float64 the two processes and one
agree to 7e-16 over those 169 steps (and to 5e-16 over the 30 here, tolerance 1e-12): the
arithmetic is the same.

The projects' batch of 15 does not divide by 2 (shards of 8 and 7) and the epoch's last batch
has one image (rank 1's shard is empty): the weighting of unequal shards is part of the check.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netbuilder.core import cli  # noqa: E402
from netbuilder.core.datasets import load_project_dataset  # noqa: E402
from netbuilder.core.errors import TrainingError  # noqa: E402
from netbuilder.core.project import load_project  # noqa: E402
from netbuilder.core.torch_distributed import (  # noqa: E402
    DistributedTorchTrainer,
    device_kind,
    launched_by_torchrun,
    torchrun_command,
)
from netbuilder.core.torch_engine import TorchTrainer, make_trainer  # noqa: E402
from netbuilder.core.weights import load_weights  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("distributed_worker.py")
WEIGHT_TOL = dict(rtol=1e-5, atol=1e-5)
LOSS_RTOL = 1e-5

CONV = [{"kind": "conv", "filters": 4, "kernel_size": 5, "activation": "relu"}, {"kind": "pool", "size": 2},
        {"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "softmax"}]
CONV_BN = [{"kind": "conv", "filters": 4, "kernel_size": 5, "bias": False}, {"kind": "batchnorm", "activation": "relu"},
           {"kind": "pool", "size": 2}, {"kind": "flatten"}, {"kind": "dense", "units": 16},
           {"kind": "batchnorm", "activation": "relu"}, {"kind": "dense", "units": 10, "activation": "softmax"}]


def write_project(folder: Path, name: str, blocks: list) -> Path:
    """166 shapes images: 136 to train (9 batches of 15 and one of 1), 30 to validate."""
    doc = {"format": 1, "name": name, "input_shape": [1, 28, 28], "num_classes": 10, "blocks": blocks,
           "training": {"loss": "cross_entropy", "optimizer": "momentum", "learning_rate": 0.02, "batch_size": 15,
                        "epochs": 1, "validation_fraction": 0.2, "seed": 3},
           "dataset": {"kind": "shapes", "train_size": 166, "test_size": 0}}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def one_process(path: Path, trainer_class=None, epochs=1, dtype=np.float32):
    """The same project trained by the torch engine in this one process."""
    project = load_project(path)
    torch.set_num_threads(1)
    dataset = load_project_dataset(project, base_dir=path.parent)
    if trainer_class is None:
        trainer = make_trainer(project, dataset, engine="torch", device="cpu", dtype=dtype)
    else:
        trainer = trainer_class(project, dataset, device="cpu", dtype=dtype)
    history = trainer.fit(epochs=epochs)
    return trainer, history


def torchrun(n: int, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", *arguments]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The worker's results: {(name, rank): (weights, record)} and the projects' paths."""
    folder = tmp_path_factory.mktemp("distributed")
    paths = {"plain": write_project(folder, "plain", CONV), "bn": write_project(folder, "bn", CONV_BN)}
    out = folder / "out"
    out.mkdir()
    done = torchrun(2, str(WORKER), str(out), str(paths["plain"]), str(paths["bn"]))
    assert done.returncode == 0, done.stdout + done.stderr
    results = {}
    for name in ("plain", "bn", "float64", "stopped"):
        for rank in (0, 1):
            with np.load(out / f"{name}.rank{rank}.npz") as z:
                weights = {k: z[k] for k in z.files}
            results[name, rank] = weights, json.loads((out / f"{name}.rank{rank}.json").read_text())
    return results, paths


@pytest.mark.slow
def test_every_process_ends_with_the_same_weights_and_figures(two_processes):
    results, _ = two_processes
    for name in ("plain", "bn", "float64", "stopped"):
        (w0, r0), (w1, r1) = results[name, 0], results[name, 1]
        assert sorted(w0) == sorted(w1)
        different = [k for k in w0 if not np.array_equal(w0[k], w1[k])]
        assert different == [], name  # bit for bit, BatchNorm's running statistics and counts included
        assert r0 == r1, name
    assert results["plain", 0][1]["world"] == 2
    assert results["plain", 0][1]["notes"] == [
        "batch size 15 over 2 processes: shards of 8 and 7 images (the gradient is the whole batch's all the same)"]


@pytest.mark.slow
def test_two_processes_train_to_the_weights_of_one_with_the_same_global_batch(two_processes):
    results, paths = two_processes
    weights, record = results["plain", 0]
    trainer, history = one_process(paths["plain"])
    assert len(record["batch_losses"]) == len(history.batch_losses[0]) == 10
    np.testing.assert_allclose(record["batch_losses"], history.batch_losses[0], rtol=LOSS_RTOL)
    reference = trainer.network.state_dict()
    assert sorted(weights) == sorted(reference)
    for k in reference:
        np.testing.assert_allclose(weights[k], reference[k], err_msg=k, **WEIGHT_TOL)
    e = history.epochs[-1]
    assert record["train_accuracy"] == e.train_accuracy and record["val_accuracy"] == e.val_accuracy
    np.testing.assert_allclose([record["train_loss"], record["val_loss"]], [e.train_loss, e.val_loss], rtol=LOSS_RTOL)


@pytest.mark.slow
def test_in_float64_two_processes_and_one_agree_to_rounding(two_processes):
    """The same arithmetic: in float64 the rounding differences are 1e-16 and stay there over 30
    steps, so the float32 gaps are float32's rounding amplified by training, not another sum."""
    results, paths = two_processes
    weights, record = results["float64", 0]
    trainer, history = one_process(paths["plain"], epochs=3, dtype=np.float64)
    assert weights["conv1.weight"].dtype == np.float64
    np.testing.assert_allclose(record["batch_losses"], sum(history.batch_losses, []), rtol=1e-12)
    reference = trainer.network.state_dict()
    for k in reference:
        np.testing.assert_allclose(weights[k], reference[k], rtol=1e-12, atol=1e-12, err_msg=k)


class HalvesNormalisedApart(TorchTrainer):
    """One process that does what two gloo processes do with BatchNorm: each half of the batch
    (the even and the odd images) normalised by its own statistics, the gradient that of the whole
    batch's mean loss, the running statistics of the two halves averaged (weighted by size)."""

    def _step(self, xb, yb, epoch, batch, snapshot):
        model, k = self._model, len(xb)
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        before = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
        sums = [[torch.zeros_like(b[0]), torch.zeros_like(b[1]), 0] for b in before]
        self._topt.zero_grad(set_to_none=True)
        model.train()
        if k == 1:
            for m in self._single_value_norms:
                m.eval()
        loss, outputs = 0.0, np.empty((k, self.network.output_features), np.float32)
        for half in (0, 1):
            x, y = xb[half::2], yb[half::2]
            if len(x) == 0:
                continue
            with torch.no_grad():
                for m, (mean, var, count) in zip(norms, before):
                    m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(count)
            pred = model(torch.from_numpy(np.ascontiguousarray(x))).reshape(len(x), -1)
            mean = self._loss(pred, torch.from_numpy(np.ascontiguousarray(y)))
            (mean * (len(x) / k)).backward()
            loss += float(mean.detach()) * len(x)
            outputs[half::2] = self._outputs(pred.detach()).numpy()
            for m, acc in zip(norms, sums):
                if m.training:
                    acc[0] += m.running_mean * len(x)
                    acc[1] += m.running_var * len(x)
                    acc[2] += len(x)
        with torch.no_grad():
            for m, (_, _, count), (mean_sum, var_sum, n) in zip(norms, before, sums):
                if n:
                    m.running_mean.copy_(mean_sum / n), m.running_var.copy_(var_sum / n)
                    m.num_batches_tracked.copy_(count + 1)
        self._topt.step()
        self.optimizer.steps += 1
        return loss / k, outputs


@pytest.mark.slow
def test_with_batchnorm_on_the_cpu_each_process_normalises_its_own_shard(two_processes):
    """gloo has no SyncBatchNorm: the two processes train as one process that normalises each half
    of the batch by its own statistics (close to one process normalising the whole batch, not
    equal: here the first batch's loss is 4% apart), their running statistics averaged."""
    results, paths = two_processes
    weights, record = results["bn", 0]
    trainer, history = one_process(paths["bn"], HalvesNormalisedApart)
    np.testing.assert_allclose(record["batch_losses"], history.batch_losses[0], rtol=LOSS_RTOL)
    reference = trainer.network.state_dict()
    assert sorted(weights) == sorted(reference)
    for k in reference:
        np.testing.assert_allclose(weights[k], reference[k], err_msg=k, **WEIGHT_TOL)
    assert int(weights["batchnorm1.num_batches_tracked"]) == 10  # the last batch, of one image, counted once
    assert int(weights["batchnorm2.num_batches_tracked"]) == 9  # one value a feature: the running statistics
    _, whole = one_process(paths["bn"])
    assert abs(record["batch_losses"][0] - whole.batch_losses[0][0]) > 1e-3  # one process: the batch's statistics


@pytest.mark.slow
def test_a_stop_asked_of_one_process_stops_them_all_after_the_same_batch(two_processes):
    results, _ = two_processes
    for rank in (0, 1):  # rank 1 asked after its third batch; the others hear of it in the fourth
        assert results["stopped", rank][1] == {"status": "stopped", "batches": 4}


@pytest.mark.slow
def test_cli_processes_2_writes_the_weights_once_and_they_export_verified(tmp_path, capfd):
    path = write_project(tmp_path, "plain", CONV)
    weights, metrics, checkpoint = tmp_path / "W.npz", tmp_path / "run.jsonl", tmp_path / "ck.npz"
    assert cli.main(["train", str(path), "--engine", "torch", "--device", "cpu", "--processes", "2", "--quiet",
                     "--out", str(weights), "--metrics", str(metrics), "--checkpoint", str(checkpoint)]) == 0
    out, err = capfd.readouterr()
    lines = out.splitlines()
    assert lines[0] == ("training 'plain' on 136 images, 30 for validation: 1 epoch of 10 batches, torch engine on "
                        "cpu, 2 processes (gloo)")  # once: rank 1 prints nothing
    assert lines[1].startswith("epoch 1/1  loss ") and lines[2] == f"finished 1 epoch; weights saved to {weights}"
    assert len(lines) == 4 and lines[3].startswith("checkpoint after epoch 1 saved to ")
    assert "Traceback" not in err and "Warning" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["W.npz", "ck.npz", "plain.json", "plain.runs", "run.jsonl"]
    assert len(list((tmp_path / "plain.runs").iterdir())) == 1  # recorded once, by rank 0
    assert [json.loads(line)["event"] for line in metrics.read_text().splitlines()] == ["epoch", "end"]
    trainer, _ = one_process(path)
    got, reference = load_weights(weights)[1], trainer.network.state_dict()
    for k in reference:
        np.testing.assert_allclose(got[k], reference[k], err_msg=k, **WEIGHT_TOL)
    pytest.importorskip("onnxruntime")
    assert cli.main(["export", str(path), str(weights), "--format", "onnx", "-o", str(tmp_path / "net.onnx")]) == 0
    assert capfd.readouterr()[0].startswith("ONNX export verified with onnxruntime")


# --- without starting processes ---------------------------------------------------------------
def test_torchrun_is_recognised_by_its_environment():
    assert launched_by_torchrun({}) is None
    assert launched_by_torchrun({"RANK": "3", "WORLD_SIZE": "4"}) is None
    launch = launched_by_torchrun({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (launch.rank, launch.world, launch.local_rank, launch.leader) == (3, 4, 1, False)
    with pytest.raises(TrainingError, match="do not fit"):
        launched_by_torchrun({"RANK": "4", "WORLD_SIZE": "4", "LOCAL_RANK": "0"})
    with pytest.raises(TrainingError, match="whole numbers"):
        launched_by_torchrun({"RANK": "x", "WORLD_SIZE": "4", "LOCAL_RANK": "0"})


def test_the_command_processes_starts_is_torchrun_on_this_machine():
    assert torchrun_command(3, ["train", "p.json"], "/py") == [
        "/py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3", "-m", "netbuilder", "train",
        "p.json"]


def test_processes_hand_every_run_option_on_to_the_processes(tmp_path, monkeypatch):
    """What --processes starts: this command less --processes, with every option a process needs."""
    import subprocess

    path = write_project(tmp_path, "plain", CONV)
    started = []

    class Done:
        returncode = 0

    monkeypatch.setattr(subprocess, "run", lambda command, env: started.append(command) or Done())
    assert cli.main(["train", str(path), "--engine", "torch", "--device", "cpu", "--processes", "2", "--epochs", "3",
                     "--keep", "best", "--quiet", "--no-record", "--out", str(tmp_path / "w.npz")]) == 0
    (command,) = started
    arguments = command[command.index("netbuilder") + 1:]
    assert arguments[:2] == ["train", str(path)] and "--processes" not in arguments
    for flag, value in (("--engine", "torch"), ("--device", "cpu"), ("--epochs", "3"), ("--keep", "best"),
                        ("--out", str(tmp_path / "w.npz"))):
        assert arguments[arguments.index(flag) + 1] == value, flag
    assert "--quiet" in arguments and "--no-record" in arguments


def test_devices_for_many_processes():
    assert device_kind("cpu") == "cpu"
    with pytest.raises(TrainingError, match="cuda:1"):  # not there, or: "give --device cuda, not cuda:1"
        device_kind("cuda:1")
    with pytest.raises(TrainingError, match="Apple GPU"):
        device_kind("mps")


def test_the_trainer_needs_a_process_group(tmp_path):
    path = write_project(tmp_path, "plain", CONV)
    project = load_project(path)
    with pytest.raises(TrainingError, match="start the processes with torchrun"):
        DistributedTorchTrainer(project, load_project_dataset(project, base_dir=tmp_path), device="cpu")


@pytest.mark.parametrize("args, message", [
    (["--processes", "2"], "training in many processes needs the torch engine: add --engine torch"),
    (["--processes", "2", "--engine", "torch", "--device", "mps"], "many processes cannot share the Apple GPU"),
])
def test_cli_processes_problems_are_one_line(tmp_path, capsys, args, message):
    path = write_project(tmp_path, "plain", CONV)
    assert cli.main(["train", str(path), *args]) == 1
    err = capsys.readouterr()[1]
    assert message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.json"]


def test_cli_under_torchrun_refuses_processes_and_the_numpy_engine(tmp_path, capsys, monkeypatch):
    path = write_project(tmp_path, "plain", CONV)
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    assert cli.main(["train", str(path)]) == 1
    assert "needs the torch engine" in capsys.readouterr()[1]
    assert cli.main(["train", str(path), "--engine", "torch", "--processes", "2"]) == 1
    assert "under torchrun leave it out" in capsys.readouterr()[1]


def test_the_speed_options_are_refused_with_many_processes(capsys):
    from argparse import Namespace

    from netbuilder.core import cli_train

    args = Namespace(engine="torch", processes=2, amp="bf16", channels_last=True, compile=False)
    assert cli_train._launch(args) is False
    assert capsys.readouterr()[1] == ("netbuilder: --amp and --channels-last: one process only so far; train in many "
                                      "processes without them\n")
    assert cli_train._launch(Namespace(engine="torch", processes=2)) is None
