"""One round of the engine benchmark (bench/engine.py), in a process of its own: train one net on
random images for a while and print one JSON line of what was measured.

- ``netbuilder`` trains through ``Trainer.run()``, the path the window and ``netbuilder train``
  take (batch gathering, the finite checks of loss and gradients, metrics and events), with the
  process set up as the CLI sets it (``prepare_process``) and the layers on ``--threads`` threads;
  images/s is timed from its ``BatchEnd`` events.
- ``pytorch`` trains the same network (``core/torch_bridge.py``: the exported ``model.py``, with
  ``Conv2d(padding=...)`` wherever the padding is symmetric, BatchNorm2d and residual modules, the
  same initial weights) in a plain loop: a shuffled batch, ``zero_grad``, forward,
  ``CrossEntropyLoss``, backward, ``SGD(momentum=0.9)`` step, on ``torch.set_num_threads(--threads)``.

Both: float32, SGD with momentum 0.9 at rate 0.01, no validation, warm-up batches first. Memory is
the peak resident size during training above the process' size once imports, model and data are
built; ``others`` is the CPU (in cores) other processes used meanwhile (bench/loadcheck.py).

    python bench/fair.py netbuilder|pytorch NET --batch 64 --threads 2 --seconds 3 [--warmup 0.5]
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadcheck import LoadCheck, peak_mb, reset_peak, rss_mb  # noqa: E402

# The nets written here (bench/engines.py reads NETS["cifar"] from bench/engine.py, which re-exports it).
NETS = {
    "lenet5": ((1, 28, 28), [
        {"kind": "conv", "filters": 6, "kernel_size": 5, "padding": "same", "activation": "relu"},
        {"kind": "pool", "mode": "max", "size": 2},
        {"kind": "conv", "filters": 16, "kernel_size": 5, "activation": "relu"},
        {"kind": "pool", "mode": "max", "size": 2},
        {"kind": "flatten"},
        {"kind": "dense", "units": 120, "activation": "relu"},
        {"kind": "dense", "units": 84, "activation": "relu"},
        {"kind": "dense", "units": 10, "activation": "softmax"},
    ]),
    "cifar": ((3, 32, 32), [
        {"kind": "conv", "filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"kind": "pool", "mode": "max", "size": 2},
        {"kind": "conv", "filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"kind": "pool", "mode": "max", "size": 2},
        {"kind": "flatten"},
        {"kind": "dense", "units": 128, "activation": "relu"},
        {"kind": "dense", "units": 10, "activation": "softmax"},
    ]),
}
EXAMPLES = {"vgg": "small_vgg", "resnet": "resnet_small"}  # the bundled example projects, read as installed
NET_NAMES = (*NETS, *EXAMPLES)
ENGINES = ("netbuilder", "pytorch")
BATCHES_PER_EPOCH = 16  # the random training set; an epoch's end (shuffle, weight snapshot) is timed too
MIN_WARMUP_BATCHES, MIN_TIMED_BATCHES = 3, 5
LR, MOMENTUM, SEED = 0.01, 0.9, 0


def project(net: str, batch: int):
    """The project of ``net`` set to train with SGD + momentum at ``batch``, no validation split."""
    from netbuilder.core.project import Project, TrainingSettings, load_project
    from netbuilder.core.resources import example_path

    settings = dict(optimizer="momentum", learning_rate=LR, momentum=MOMENTUM, weight_decay=0.0, batch_size=batch,
                    validation_fraction=0.0, seed=SEED, augmentation=None, schedule=None, early_stopping=None)
    if net in NETS:
        shape, blocks = NETS[net]
        p = Project(name=net, input_shape=shape, num_classes=10, blocks=[dict(b) for b in blocks],
                    training=TrainingSettings(**settings))
    else:
        p = load_project(example_path(EXAMPLES[net]))
        p.training = dataclasses.replace(p.training, **settings)
    p.dataset = {"kind": "random", "normalization": None}
    return p


def gemm_flops_per_image(net: str) -> tuple[int, int]:
    """(forward GEMM FLOPs, training FLOPs) of one image: 2 x the multiply-adds of the conv and dense
    layers (a residual block's projection included), and forward + backward as 3 x the forward (the
    input gradient of the first layer, which nobody needs, counted too)."""
    from netbuilder.core.network import Network

    forward = 2 * sum(stage.info.macs for stage in Network(project(net, 1)).stages)
    return forward, 3 * forward


def _random_data(p, n: int):
    import numpy as np

    rng = np.random.default_rng(SEED)
    return (rng.random((n, *p.input_shape), dtype=np.float32), rng.integers(0, p.num_classes, n).astype(np.int64))


def _netbuilder(p, x, y, threads: int):
    """(batch iterator, finish) of a Trainer run; finish() stops it and checks it ended by that stop."""
    from netbuilder.core.cli import prepare_process
    from netbuilder.core.datasets.base import Dataset
    from netbuilder.core.layers import parallel
    from netbuilder.core.trainer import BatchEnd, RunEnded, Trainer

    prepare_process()  # as the CLI and the app set the process up
    parallel.set_threads(threads)
    trainer = Trainer(p, Dataset("random", x, y, [str(i) for i in range(p.num_classes)]))
    run = trainer.run(10**6)

    def batches():
        for event in run:
            if isinstance(event, BatchEnd):
                yield
            elif isinstance(event, RunEnded):  # before the stop: diverged or failed
                raise SystemExit(f"netbuilder {p.name}: the run ended early: {event.message}")

    def finish():
        trainer.stop()
        ended = [e for e in run if isinstance(e, RunEnded)]
        if not ended or ended[-1].status != "stopped":
            raise SystemExit(f"netbuilder {p.name}: the run ended {ended[-1].message if ended else 'without RunEnded'}")

    return batches(), finish


def _pytorch(p, x, y, threads: int):
    import numpy as np
    import torch

    from netbuilder.core.network import Network
    from netbuilder.core.torch_bridge import torch_model

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)  # dropout's masks
    model = torch_model(Network(p, rng=np.random.default_rng(SEED)), final_activation=False).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    batch, order = p.training.batch_size, torch.Generator().manual_seed(SEED)

    def batches():
        while True:
            perm = torch.randperm(len(xs), generator=order)
            for lo in range(0, len(xs), batch):
                idx = perm[lo:lo + batch]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xs[idx]), ys[idx])
                loss.backward()
                opt.step()
                yield

    return batches(), lambda: None


def measure(engine: str, net: str, batch: int, threads: int, seconds: float, warmup: float) -> dict:
    """Train ``net`` with ``engine`` for ``warmup`` then ``seconds`` seconds (at least a few batches
    each); images/s over the timed part, memory and the others' load over warm-up and timed part."""
    p = project(net, batch)
    x, y = _random_data(p, batch * BATCHES_PER_EPOCH)
    batches, finish = (_netbuilder if engine == "netbuilder" else _pytorch)(p, x, y, threads)
    gc.collect()
    baseline = rss_mb()
    peak_reset = reset_peak()
    load = LoadCheck()
    start, n = time.perf_counter(), 0
    while n < MIN_WARMUP_BATCHES or time.perf_counter() - start < warmup:
        next(batches)
        n += 1
    start = now = time.perf_counter()
    timed = 0
    while timed < MIN_TIMED_BATCHES or now - start < seconds:
        next(batches)
        timed += 1
        now = time.perf_counter()
    others = load.others()
    peak = peak_mb()
    finish()
    return {"engine": engine, "net": net, "batch": batch, "threads": threads, "ips": timed * batch / (now - start),
            "batches": timed, "baseline_mb": baseline, "peak_mb": max(peak - baseline, 0.0),
            "peak_reset": peak_reset, "others": others}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("engine", choices=ENGINES)
    ap.add_argument("net", choices=NET_NAMES)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    a = ap.parse_args()
    print(json.dumps(measure(a.engine, a.net, a.batch, a.threads, a.seconds, a.warmup)))


if __name__ == "__main__":
    main()
