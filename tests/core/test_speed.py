"""The training-time estimate: arithmetic at a measured rate plus a per-step overhead, shown by the summary."""
from __future__ import annotations

import math

import pytest

from netbuilder.core import cli
from netbuilder.core.datasets.registry import known_train_size
from netbuilder.core.inference import infer
from netbuilder.core.project import Project, load_project
from netbuilder.core.resources import example_path
from netbuilder.core.speed import duration_text, estimate_epoch, project_estimate, step_overhead, training_rate
from netbuilder.core.summary import format_summary


def test_the_estimate_is_arithmetic_at_the_rate_plus_overhead_per_step():
    e = estimate_epoch(1_000_000, samples=1000, batch_size=64, rate=1e9, overhead=0.01)
    assert e.epoch == pytest.approx(1000 * 1e6 / 1e9 + math.ceil(1000 / 64) * 0.01)
    assert e.per_thousand == pytest.approx(e.epoch)
    bigger = estimate_epoch(2_000_000, samples=1000, batch_size=64, rate=1e9, overhead=0.01)
    assert bigger.epoch > e.epoch
    unknown = estimate_epoch(1_000_000, rate=1e9, overhead=0.0)
    assert unknown.epoch is None and "per 1,000 training samples" in unknown.text()


def test_the_calibration_measures_something_real():
    rate, overhead = training_rate(), step_overhead()
    assert math.isfinite(rate) and rate > 1e6  # any machine does a million multiply-adds a second
    assert 0 < overhead < 1


def test_a_built_in_dataset_gives_its_epoch_less_the_validation_share():
    project = load_project(example_path("lenet5"))  # shapes: 12,000 images, 10% held out, 5 epochs
    e = project_estimate(project, infer(project).total_macs)
    assert e.samples == 10800 and e.epochs == 5
    assert e.epoch == pytest.approx(estimate_epoch(infer(project).total_macs, 10800, 64).epoch, rel=1e-9)
    assert "one epoch of 10,800 samples" in e.text() and "5 epochs: about" in e.text()


def test_files_give_no_size_until_loaded():
    assert known_train_size({"kind": "npz", "path": "x.npz"}) is None
    assert known_train_size({"kind": "shapes", "train_size": 0}) is None  # invalid: no figure
    assert known_train_size({"kind": "xor", "repeat": 3}) == 12
    project = Project(dataset={"kind": "folder", "path": "pics"})
    assert project_estimate(project, 1000).samples is None


def test_a_thousand_block_net_is_no_surprise():
    blocks = [{"kind": "conv", "filters": 64, "kernel_size": 3, "padding": "same"} for _ in range(1000)]
    head = [{"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "softmax"}]
    project = Project(input_shape=(3, 32, 32), blocks=blocks + head)
    inference = infer(project)
    text = format_summary(project, inference, project_estimate(project, inference.total_macs))
    line = next(ln for ln in text.splitlines() if ln.startswith("Training time:"))
    assert line.endswith(")") and ("h" in line or "days" in line)  # hours at least, on any laptop


@pytest.mark.parametrize("seconds,text", [(0.004, "4 ms"), (41.2, "41 s"), (600, "10 min"),
                                           (5400, "1.5 h"), (3e6, "35 days")])
def test_durations_read_naturally(seconds, text):
    assert duration_text(seconds) == text


def test_the_command_line_summary_shows_it(capsys):
    assert cli.main(["summary", str(example_path("lenet5"))]) == 0
    out = capsys.readouterr().out
    assert "Training time: one epoch of 10,800 samples: about" in out
