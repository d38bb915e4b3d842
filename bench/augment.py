"""What data augmentation (core/augment.py) costs per batch, against one numpy training step, same run.

Times each augmentation alone and all of them together on LeNet-5-sized batches (64 x 1 x 28 x 28)
and CIFAR-sized ones (64 x 3 x 32 x 32), and, in the same process and interleaved with them, one
training step (``Network.train_step`` + the optimiser, as bench/engine.py and the trainer run it)
of LeNet-5 and of the CIFAR-sized net at batch 64. The issue's bar: augmentation must not halve
training speed on LeNet-5, i.e. all augmentations together must cost less than one LeNet-5 step.
Each figure is the median over ``--rounds`` rounds of the mean over about ``--seconds`` seconds.
The last line reads ``augment lenet5_step_ratio=<x> cifar_step_ratio=<y>`` (all augmentations
together per batch / one training step of that net; under 1 holds the bar).

    python bench/augment.py [--seconds 0.5] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/engine.py's nets

from engine import BATCH, NETS, _project  # noqa: E402

SETTINGS = {
    "shift": {"shift": 2},
    "flip": {"flip": 0.5},
    "rotate": {"rotate": 10},
    "rotate_nearest": {"rotate": 10, "interpolation": "nearest"},
    "contrast": {"contrast": 0.2},
    "brightness": {"brightness": 0.1},
    "noise": {"noise": 0.02},
}
ALL = {"shift": 2, "flip": 0.5, "rotate": 10, "contrast": 0.2, "brightness": 0.1, "noise": 0.02}


def _mean_seconds(call, seconds: float) -> float:
    """Seconds per call of ``call`` over about ``seconds``, after a warm-up."""
    for _ in range(3):
        call()
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < seconds:
        call()
        n += 1
    return (time.perf_counter() - start) / n


def _stepper(net: str):
    from netbuilder.core.network import Network
    from netbuilder.core.optimizers import make_optimizer

    project = _project(net)
    rng = np.random.default_rng(0)
    xs = rng.random((8, BATCH, *project.input_shape), dtype=np.float32)
    ys = rng.integers(0, 10, (8, BATCH))
    model = Network(project)
    opt = make_optimizer(project.training)
    i = [0]

    def step():
        k = i[0] = (i[0] + 1) % 8
        model.train_step(xs[k], ys[k])
        opt.step(model.parameters(), model.gradients())

    return step


def _augmenter(spec: dict, shape: tuple[int, ...]):
    from netbuilder.core.augment import Augmentation

    aug = Augmentation.from_spec(spec)
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    rng = np.random.default_rng(2)
    return lambda: aug.augment(x, rng)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=0.5, help="per figure per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from netbuilder.core.cli import prepare_process
    from netbuilder.core.layers.parallel import blas_single_threaded

    prepare_process()  # as the CLI and the app set the process up
    blas_single_threaded().__enter__()  # as a training run holds it; this process ends after

    sizes = {"lenet5": (BATCH, *NETS["lenet5"][0]), "cifar": (BATCH, *NETS["cifar"][0])}
    calls = {}
    for net, shape in sizes.items():
        calls[(net, "training step")] = _stepper(net)
        for name, spec in {**SETTINGS, "all together": ALL}.items():
            calls[(net, name)] = _augmenter(spec, shape)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    for _ in range(args.rounds):  # interleaved, so the machine's moods fall on every figure alike
        for key, call in calls.items():
            times[key].append(_mean_seconds(call, args.seconds))
    ms = {key: statistics.median(t) * 1e3 for key, t in times.items()}

    print(f"augmentation cost per batch of {BATCH}, median of {args.rounds} rounds; "
          f"reference: one numpy training step (train_step + momentum SGD) of that net, same run")
    all_spec = ", ".join(f"{k}={v}" for k, v in ALL.items())
    ratios = {}
    for net, shape in sizes.items():
        step = ms[(net, "training step")]
        print(f"\n== {net}: batch {' x '.join(map(str, shape))}, training step {step:.2f} ms ==")
        print(f"{'augmentation':16} {'ms/batch':>9} {'/ step':>7}")
        for name in [*SETTINGS, "all together"]:
            t = ms[(net, name)]
            print(f"{name:16} {t:9.3f} {t / step:7.3f}")
        ratios[net] = ms[(net, "all together")] / step
        print(f"all together ({all_spec}): training at {1 / (1 + ratios[net]):.0%} of its speed without")
    verdict = "holds" if ratios["lenet5"] < 1 else "FAILS"
    print(f"\nthe bar (all together under one LeNet-5 step, so training speed is not halved): {verdict}")
    print(f"augment lenet5_step_ratio={ratios['lenet5']:.3f} cifar_step_ratio={ratios['cifar']:.3f}")


if __name__ == "__main__":
    main()
