"""Pooling and BatchNorm, the engine's code now against the same files at an earlier commit, in one process.

Each row times one layer (forward + backward of a training step, or an inference forward) on the
inputs it gets inside LeNet-5, the CIFAR-sized net, small_vgg and a ResNet stem, at batch 64. The
old and new code alternate within every round and each figure is the best of the rounds, so a
machine shared with other work disturbs both alike. With one thread the clock is the thread's
own CPU time (time spent waiting for a core is not counted); with more, wall time.

    python bench/pool.py [--ref 2a6c113] [--rounds 15] [--threads 1] [--only pool|bn]
"""
from __future__ import annotations

import argparse
import subprocess
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64
# (row name, (C, H, W), window, stride, pads)
POOLS = [
    ("lenet5 pool1", (6, 28, 28), (2, 2), (2, 2), (0, 0, 0, 0)),
    ("lenet5 pool2", (16, 10, 10), (2, 2), (2, 2), (0, 0, 0, 0)),
    ("cifar pool1", (32, 32, 32), (2, 2), (2, 2), (0, 0, 0, 0)),
    ("cifar pool2", (64, 16, 16), (2, 2), (2, 2), (0, 0, 0, 0)),
    ("vgg pool3", (128, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0)),
    ("stem 3x3/2 pad 1", (32, 32, 32), (3, 3), (2, 2), (1, 1, 1, 1)),
    ("3x3/2", (64, 15, 15), (3, 3), (2, 2), (0, 0, 0, 0)),
]


def old_module(ref: str, path: str, name: str) -> types.ModuleType:
    """The file ``path`` as it was at git ``ref``, loaded as a module of its own."""
    source = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    module = types.ModuleType(name)
    module.__file__ = f"{ref}:{path}"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def batch_innermost(rng, shape):
    """A random (N, C, H, W) array stored (C, H, W, N), as a convolution hands it over."""
    n, c, h, w = shape
    return rng.standard_normal((c, h, w, n)).astype(np.float32).transpose(3, 0, 1, 2)


def pool_jobs(old, new, rng):
    """(row, {"old": job, "new": job}) for every pooling row: training step and inference."""
    rows = []
    for name, chw, size, stride, pads in POOLS:
        x = np.maximum(batch_innermost(rng, (BATCH, *chw)), 0)  # after a relu: ties, as in a network
        layers = {"old": old.Pool2D("max", size, stride, pads), "new": new.Pool2D("max", size, stride, pads)}
        g = np.ones_like(layers["new"].forward(x, True))
        rows.append((f"max {name} train", {k: (lambda p=p, x=x, g=g: train_step(p, x, g)) for k, p in layers.items()}))
        rows.append((f"max {name} infer", {k: (lambda p=p, x=x: p.forward(x, False)) for k, p in layers.items()}))
        if name == "cifar pool1":
            avg = {"old": old.Pool2D("average", size, stride, pads), "new": new.Pool2D("average", size, stride, pads)}
            rows.append((f"avg {name} train", {k: (lambda p=p, x=x, g=g: train_step(p, x, g)) for k, p in avg.items()}))
    return rows


# (row name, input (C, H, W) or (features,), activation)
NORMS = [
    ("vgg_bn bn1", (16, 28, 28), "relu"),
    ("vgg_bn bn3", (32, 14, 14), "relu"),
    ("cifar-sized", (32, 32, 32), "relu"),
    ("resnet identity", (16, 14, 14), "identity"),
    ("after dense", (128,), "relu"),
]


def bn_jobs(old_bn, old_act, rng):
    """BatchNorm and its activation: the old separate layers against the fused one."""
    from netbuilder.core.layers.activation import Activation, fuse
    from netbuilder.core.layers.batchnorm import BatchNorm

    rows = []
    for name, shape, act in NORMS:
        x = batch_innermost(rng, (BATCH, *shape)) if len(shape) == 3 else rng.standard_normal((BATCH, *shape),
                                                                                            np.float32)
        new_bn, new_act = BatchNorm(shape[0]), Activation(act)
        if act != "identity":
            fuse(new_bn, new_act)
        pairs = {"old": [old_bn.BatchNorm(shape[0]), old_act.Activation(act)], "new": [new_bn, new_act]}
        g = np.ones_like(x)
        rows.append((f"bn+{act} {name} train", {k: (lambda p=p, x=x, g=g: train_steps(p, x, g))
                                                 for k, p in pairs.items()}))
        rows.append((f"bn+{act} {name} infer", {k: (lambda p=p, x=x: p[1].forward(p[0].forward(x)))
                                                 for k, p in pairs.items()}))
    return rows


def train_steps(layers, x, g):
    for layer in layers:
        x = layer.forward(x, True)
    for layer in reversed(layers):
        g = layer.backward(g)
    return g


def train_step(layer, x, g):
    layer.forward(x, True)
    return layer.backward(g)


def measure(rows, rounds: int, threads: int, inner: int = 5) -> list[tuple[str, float, float]]:
    clock = time.thread_time if threads == 1 else time.perf_counter
    best = {(name, k): float("inf") for name, jobs in rows for k in jobs}
    for _, jobs in rows:  # warm up: scratch buffers, caches
        for job in jobs.values():
            job()
    for _ in range(rounds):
        for name, jobs in rows:
            for k, job in jobs.items():
                start = clock()
                for _ in range(inner):
                    job()
                best[name, k] = min(best[name, k], (clock() - start) * 1e3 / inner)
    return [(name, best[name, "old"], best[name, "new"]) for name, _ in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default="2a6c113", help="the commit whose code is 'old'")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["pool", "bn"])
    args = ap.parse_args()

    from netbuilder.core.cli import prepare_process
    from netbuilder.core.layers import parallel

    prepare_process()
    parallel.set_threads(args.threads)
    parallel.blas_single_threaded().__enter__()  # as a training run holds it; this process ends after
    rng = np.random.default_rng(0)
    rows = []
    if args.only in (None, "pool"):
        from netbuilder.core.layers import pool as new_pool

        rows += pool_jobs(old_module(args.ref, "core/layers/pool.py", "old_pool"), new_pool, rng)
    if args.only in (None, "bn"):
        rows += bn_jobs(old_module(args.ref, "core/layers/batchnorm.py", "old_bn"),
                        old_module(args.ref, "core/layers/activation.py", "old_activation"), rng)
    clock = "CPU time of the thread" if args.threads == 1 else "wall time"
    print(f"batch {BATCH}, {args.threads} thread(s), ms ({clock}), best of {args.rounds} rounds; "
          f"old = {args.ref}")
    print(f"{'layer':38} {'old':>8} {'new':>8} {'speed-up':>9}")
    for name, a, b in measure(rows, args.rounds, args.threads):
        print(f"{name:38} {a:8.3f} {b:8.3f} {a / b:8.2f}x")


if __name__ == "__main__":
    main()
