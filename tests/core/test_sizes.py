"""Sizes nobody could allocate are refused before anything is allocated, naming the block and the
figures; integers beyond any sane bound are validation errors; a batch larger than the data is
the whole training split."""
from __future__ import annotations

import json

import pytest

from netbuilder.core import cli, memory
from netbuilder.core.datasets import load_project_dataset
from netbuilder.core.errors import TrainingError
from netbuilder.core.inference import MAX_INT, infer
from netbuilder.core.project import parse_project
from netbuilder.core.resources import example_path
from netbuilder.core.trainer import Trainer

GIB = 2**30


@pytest.fixture
def machine(monkeypatch):
    """This machine has as much memory as the test says (24 GiB unless set)."""
    def set_memory(gib: float = 24):
        monkeypatch.setenv("NETBUILDER_MEMORY_BYTES", str(int(gib * GIB)))
        memory.machine_memory.cache_clear()
    set_memory()
    yield set_memory
    monkeypatch.undo()
    memory.machine_memory.cache_clear()


def lenet(change) -> dict:
    d = json.loads(example_path("lenet5").read_text())
    change(d)
    return d


def problems(d: dict, severity: str = "error") -> list[str]:
    return [p.message for p in infer(parse_project(json.dumps(d))).problems if p.severity == severity]


def test_a_billion_filters_are_refused_naming_the_block_and_both_sizes(machine):
    d = lenet(lambda d: d["blocks"][0].update(filters=1_000_000_000))
    assert problems(d) == ["block 1 (conv): 1,000,000,000 filters of 1x5x5 need 96.9 GiB for weights alone; "
                           "this machine has 24.0 GiB"]


@pytest.mark.parametrize("change,expected", [
    (lambda d: d["blocks"][0].update(kernel_size=1_000_000), "block 1 (conv): 6 filters of 1x1,000,000x1,000,000"),
    (lambda d: d.update(input_shape=[1, 100_000, 100_000]), "block 6 (dense): 120 units of 9,998,400,064 inputs"),
])
def test_every_impossible_size_is_caught_before_allocation(machine, change, expected):
    [message] = problems(lenet(change))
    assert message.startswith(expected) and "for weights alone; this machine has 24.0 GiB" in message


def test_weights_gradients_and_optimiser_state_count_too(machine):
    machine(4)
    d = lenet(lambda d: d["blocks"][5].update(units=1_000_000))  # 485 M parameters: 1.8 GiB, 4x with adam
    assert problems(d) == ["the weights with their gradients and adam's state need 7.2 GiB; this machine has "
                           "4.0 GiB: use fewer filters or units or the sgd optimizer"]
    machine(10)
    warnings = problems(d, "warning")
    assert any("more than half of this machine's 10.0 GiB" in w for w in warnings)
    assert problems(d) == []


@pytest.mark.parametrize("change,field", [
    (lambda d: d["blocks"][0].update(filters=2**63), "filters"),
    (lambda d: d["blocks"][0].update(kernel_size=[3, 2**40]), "kernel_size"),
    (lambda d: d["training"].update(batch_size=2**31), "training.batch_size"),
    (lambda d: d["training"].update(epochs=2**62), "training.epochs"),
    (lambda d: d.update(input_shape=[1, 28, 2**31]), "input_shape"),
])
def test_integers_beyond_the_bound_are_validation_errors_naming_the_field(machine, change, field):
    result = infer(parse_project(json.dumps(lenet(change))))
    [problem] = result.errors
    assert problem.field == field and f"{MAX_INT:,}" in problem.message


def test_the_command_line_says_so_in_one_line_and_exits_2(machine, tmp_path, capsys):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(lenet(lambda d: d["blocks"][0].update(filters=1_000_000_000))))
    assert cli.main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "1,000,000,000 filters of 1x5x5 need 96.9 GiB" in err
    assert not list(tmp_path.glob("*.npz"))


def test_a_batch_larger_than_the_data_is_the_whole_split_with_a_note(machine, tmp_path, capsys):
    d = lenet(lambda d: (d["training"].update(batch_size=1_000_000_000, epochs=1),
                         d.update(dataset={"kind": "shapes", "train_size": 200, "test_size": 0})))
    project = parse_project(json.dumps(d))
    assert any("if the training split has fewer images" in w for w in problems(d, "warning"))
    trainer = Trainer(project, load_project_dataset(project))
    assert trainer.batch_size == 180 and "each batch is the whole training split" in trainer.notes[0]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(d))
    assert cli.main(["train", str(path), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "note: batch size 1,000,000,000 is more than the 180 training images" in captured.err
    assert "1 epoch of 1 batches" in captured.out


def test_a_step_that_cannot_fit_is_refused_by_the_trainer_before_allocating(machine):
    machine(0.05)  # 51 MiB: LeNet-5's weights fit, a batch of 12,000 does not
    d = lenet(lambda d: d["training"].update(batch_size=12_000))
    project = parse_project(json.dumps(d))
    with pytest.raises(TrainingError, match="a training step needs about .* at batch size 10800 .*this machine "
                                            "has 51.2 MiB: use a smaller batch size"):
        Trainer(project, load_project_dataset(project))


def test_a_memory_error_that_still_happens_is_one_line(machine, tmp_path, capsys, monkeypatch):
    from netbuilder.core.network import Network

    def no_memory(self, *args, **kwargs):
        raise MemoryError("Unable to allocate 2.85 TiB for an array with shape (64, 1000000000) and data type float32")

    monkeypatch.setattr(Network, "train_step", no_memory)
    assert cli.main(["train", "xor", "--quiet", "--out", str(tmp_path / "w.npz")]) == 1
    err = capsys.readouterr().err
    assert "Unable to allocate 2.85 TiB" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("netbuilder:")]) == 2  # the example note


def test_a_huge_csv_label_is_reported_as_written(tmp_path):
    from netbuilder.core.datasets import DatasetError, load_dataset

    path = tmp_path / "big.csv"
    path.write_text("label,a,b\n1e30,0,1\n0,1,0\n")
    with pytest.raises(DatasetError, match="label 1e\\+30 at line 2 is not a class index: labels must be 0 to 99,999"):
        load_dataset({"kind": "csv", "path": str(path), "image_shape": [1, 1, 2]})


def test_a_20_mb_block_name_is_refused_without_repeating_it():
    d = lenet(lambda d: d["blocks"][0].update(name="n" * 20_000_000))
    result = infer(parse_project(json.dumps(d)))
    assert result.blocks[0].name == "conv1"  # the card shows the automatic name, not 20 MB of text
    [problem] = result.errors
    assert problem.field == "name" and "name of 20,000,000 characters must be a single word of at most 64" \
        in problem.message and len(problem.message) < 300
