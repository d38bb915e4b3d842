"""The command line as an installed package: --version, the bundled examples by name, --metrics
JSON lines, and a reader that leaves the pipe early."""
from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

from netbuilder.core import cli
from netbuilder.core.resources import example_names, example_path


def test_version_comes_from_the_installed_metadata(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"netbuilder {version('netbuilder')}"


def test_examples_lists_every_bundled_project(capsys):
    assert cli.main(["examples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == example_names()
    assert set(example_names()) >= {"lenet5", "mlp", "small_vgg", "xor", "lenet5_fashion"}
    [lenet] = [line for line in lines if line.startswith("lenet5 ")]
    assert "LeNet-5" in lenet and "61,706 parameters" in lenet
    [xor] = [line for line in lines if line.startswith("xor ")]
    assert "1 binary output" in xor


def test_summary_by_example_name_says_it_used_the_bundled_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["summary", "lenet5"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("LeNet-5: input 1 x 28 x 28") and "61,706" in out
    assert f"using the bundled example 'lenet5' ({example_path('lenet5')})" in err


def test_a_file_of_that_name_wins_over_the_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lenet5").write_text(example_path("xor").read_text())
    assert cli.main(["summary", "lenet5"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("XOR") and err == ""


def test_an_unknown_name_points_to_the_list(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["summary", "lenet6"]) == 1
    assert capsys.readouterr().err == ("netbuilder: lenet6: no such file (nor a bundled example of that name: "
                                       "'netbuilder examples' lists them)\n")


def test_training_a_bundled_example_writes_its_weights_here_not_into_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "xor", "--epochs", "2", "--quiet"]) == 0
    assert (tmp_path / "xor.weights.npz").is_file()
    assert not (example_path("xor").parent / "xor.weights.npz").exists()


def test_metrics_lines_parse_and_match_the_printed_epochs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    metrics = tmp_path / "run.jsonl"
    assert cli.main(["train", "xor", "--epochs", "3", "--quiet", "--metrics", str(metrics)]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    epochs, [end] = records[:-1], records[-1:]
    assert len(epochs) == len(printed) == 3
    for record, line in zip(epochs, printed):
        assert record["event"] == "epoch" and record["epochs"] == 3
        assert line.startswith(f"epoch {record['epoch']}/3  loss {record['loss']:.4f}  "
                               f"accuracy {100 * record['accuracy']:.1f}%")
    assert end == {"event": "end", "status": "finished", "message": "finished 3 epochs",
                   "weights": "xor.weights.npz", "test_accuracy": None}


def test_a_reader_that_leaves_early_gets_no_traceback_and_training_still_saves(tmp_path):
    code = ("import subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, '-m', 'netbuilder', 'train', 'xor', '--epochs', '40'],"
            " stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
            "p.stdout.readline(); p.stdout.close()\n"
            "err = p.stderr.read().decode(); print(p.wait()); print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    rc, _, err = out.stdout.partition("\n")
    assert rc == "0" and "Traceback" not in err and "BrokenPipe" not in err
    assert (tmp_path / "xor.weights.npz").is_file()
