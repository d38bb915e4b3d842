"""bench/engine.py, the engine benchmark: its load check repeats loaded rounds within its caps, its
/proc readings, the FLOPs it counts, and a --quick run's output (every row, the last line)."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import engine  # noqa: E402
import loadcheck  # noqa: E402


def _fake(others: list[float]):
    """A round runner whose rounds read ``others`` in turn; the calls it got."""
    calls = []

    def run(e, n, b, t):
        calls.append((e, n, b, t))
        return {"ips": 100.0 + len(calls), "others": others[len(calls) - 1]}

    return run, calls


def test_a_loaded_round_is_run_again_until_quiet():
    run, calls = _fake([0.9, 0.5, 0.1])
    rounds = engine.Rounds(run, limit=0.2, max_repeats=3, budget=10)
    result = rounds.round("netbuilder", "lenet5", 64, 2)
    assert len(calls) == 3 and result["ips"] == 103.0  # the quiet round's figure
    assert result["repeats"] == 2 and not result["loaded"] and rounds.repeats == 2 and rounds.loaded == []


def test_repeats_stop_at_the_cap_keeping_the_least_loaded_try_marked_loaded():
    run, calls = _fake([0.9, 0.4, 0.7, 0.8, 0.1])
    waits = []
    rounds = engine.Rounds(run, limit=0.2, max_repeats=3, budget=10, wait=lambda: waits.append(len(calls)))
    result = rounds.round("pytorch", "cifar", 16, 1)
    assert len(calls) == 4 and waits == [1, 2, 3]  # a wait for quiet before each repeat
    assert result["ips"] == 102.0 and result["others"] == 0.4 and result["repeats"] == 3 and result["loaded"]
    assert rounds.loaded == ["cifar pytorch batch 16 1 thread"]


def test_the_budget_caps_repeats_over_all_rounds():
    run, calls = _fake([0.9] * 10)
    rounds = engine.Rounds(run, limit=0.2, max_repeats=3, budget=2)
    first, second = rounds.round("netbuilder", "vgg", 64, 2), rounds.round("pytorch", "vgg", 64, 2)
    assert (first["repeats"], second["repeats"], len(calls), rounds.repeats) == (2, 0, 4, 2)
    assert first["loaded"] and second["loaded"] and rounds.count == 2 and len(rounds.loaded) == 2


def test_the_load_check_sees_another_process_spin():
    check = loadcheck.LoadCheck()
    subprocess.run([sys.executable, "-c", "import time\nend = time.process_time() + 0.6\n"
                    "while time.process_time() < end: pass"], check=True)
    assert check.others() > 0.3  # the child spun 0.6 CPU seconds in at most a few wall seconds


def test_the_memory_peak_resets_to_the_current_size():
    big = np.ones(64 << 20, np.uint8)  # 64 MB touched, then freed
    del big
    assert loadcheck.reset_peak()
    assert loadcheck.peak_mb() - loadcheck.rss_mb() < 16


def test_gemm_flops_are_the_conv_and_dense_multiply_adds():
    lenet = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert engine.gemm_flops_per_image("lenet5") == (2 * lenet, 6 * lenet)
    # resnet_small: the stem, three residual blocks (the 2nd and 3rd at stride 2 with 1x1 projections), dense
    resnet = (28 * 28 * 8 * 9 + 2 * 28 * 28 * 8 * 8 * 9
              + 14 * 14 * 16 * (8 * 9 + 16 * 9 + 8) + 7 * 7 * 32 * (16 * 9 + 32 * 9 + 16) + 32 * 10)
    assert engine.gemm_flops_per_image("resnet")[0] == 2 * resnet


@pytest.mark.slow
def test_a_quick_run_prints_every_row_and_the_ratio_last():
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "engine.py"), "--quick", "--nets", "lenet5"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert re.fullmatch(r"numpy sgemm .*: 1 thread [\d.]+ GFLOP/s, 2 threads [\d.]+ GFLOP/s \(others .*\)",
                        next(line for line in lines if line.startswith("numpy sgemm")))
    rows = {}
    for line in lines:
        m = re.match(r"\s+(\d+)\s+(\d+)\s+(netbuilder|pytorch)\s+([\d,]+)\s+([\d.]+)%\s+([\d.]+)\s+(\d+)", line)
        if m:
            rows[m[3], int(m[1]), int(m[2])] = float(m[4].replace(",", ""))
    assert set(rows) == {(e, b, t) for e in ("netbuilder", "pytorch") for b, t in ((64, 2), (64, 1), (16, 2), (256, 2))}
    assert all(ips > 0 for ips in rows.values())
    assert any(line.startswith("repeats: ") for line in lines)
    last = re.fullmatch(r"ratio lenet5=(\d+\.\d\d)", lines[-1])
    assert last, lines[-1]
    assert float(last[1]) == pytest.approx(rows["netbuilder", 64, 2] / rows["pytorch", 64, 2], rel=0.01, abs=0.01)
    assert time.perf_counter() - start < 240
