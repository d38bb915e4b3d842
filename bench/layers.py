"""Forward + backward time of each layer, netbuilder against PyTorch, at batch 64.

Layers are timed on the inputs and gradients they really receive inside LeNet-5 (1x28x28) and a
CIFAR-sized net (3x32x32), i.e. in the memory layouts their neighbours hand over; the last row
of each net is a whole forward + loss + backward step (no optimizer; as in a real step, neither
framework computes the gradient of the input image). Each framework runs in its
own subprocess (OpenBLAS and OpenMP threads spinning in one process would slow each other down);
the two alternate, and figures are the best over rounds, in milliseconds (the machine may be
shared: the fastest run is the one least disturbed).

A convolution or dense layer followed by relu applies it itself, as the blocks build them (its
row includes the relu; the relu's own row is then a pass-through). ``--unfused`` adds a third
column, the same netbuilder layers with every relu a layer of its own, as the engine ran before
the fusion: the reference for what the fusion saves, measured in the same rounds.

    python bench/layers.py [--rounds 3] [--threads 2] [--net lenet5|cifar] [--unfused]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64

# (input C, H, W), then layers as (kind, args...) in the order a network runs them.
NETS = {
    "lenet5": ((1, 28, 28), [
        ("conv", 6, (5, 5), (1, 1), (2, 2, 2, 2)), ("relu",), ("maxpool", (2, 2)),
        ("conv", 16, (5, 5), (1, 1), (0, 0, 0, 0)), ("relu",), ("maxpool", (2, 2)),
        ("flatten",), ("dense", 120), ("relu",), ("dense", 84), ("relu",), ("dense", 10),
    ]),
    "cifar": ((3, 32, 32), [
        ("conv", 32, (3, 3), (1, 1), (1, 1, 1, 1)), ("relu",), ("maxpool", (2, 2)),
        ("conv", 64, (3, 3), (1, 1), (1, 1, 1, 1)), ("relu",), ("maxpool", (2, 2)),
        ("flatten",), ("dense", 128), ("relu",), ("dense", 10),
    ]),
}


def netbuilder_layers(net: str, fused: bool = True):
    """(name, layer) pairs of ``net`` and its input shape; ``fused``: each relu applied by the
    conv or dense layer before it, as the blocks build them."""
    import numpy as np

    from netbuilder.core.layers import Activation, Conv2D, Dense, Flatten, Pool2D
    from netbuilder.core.layers.activation import fuse

    rng = np.random.default_rng(0)
    in_shape, specs = NETS[net]
    shape = (BATCH, *in_shape)
    out = []
    for spec in specs:
        kind = spec[0]
        if kind == "conv":
            _, filters, kernel, stride, pads = spec
            layer = Conv2D(shape[1], filters, kernel, stride, pads, rng)
            name = f"conv {shape[1]}->{filters} k{kernel[0]} {shape[2]}x{shape[3]}"
        elif kind == "relu":
            layer, name = Activation("relu"), "relu"
            if fused and isinstance(out[-1][1], (Conv2D, Dense)):
                fuse(out[-1][1], layer)
        elif kind == "maxpool":
            layer = Pool2D("max", spec[1], spec[1], (0, 0, 0, 0))
            name = f"maxpool {spec[1][0]} {shape[1]}x{shape[2]}x{shape[3]}"
        elif kind == "flatten":
            layer, name = Flatten(), "flatten"
        else:
            layer = Dense(shape[1], spec[1], rng)
            name = f"dense {shape[1]}->{spec[1]}"
        out.append((f"{len(out) + 1:2}. {name}", layer))
        shape = layer.forward(np.zeros(shape, np.float32)).shape
    return out, (BATCH, *in_shape)


def torch_fn(layer, torch):
    """The torch function computing what netbuilder ``layer`` computes, with its weights."""
    from netbuilder.core.layers import Activation, Conv2D, Dense, Flatten

    F = torch.nn.functional
    if isinstance(layer, Conv2D):
        w = torch.tensor(layer.params["weight"], requires_grad=True)
        b = torch.tensor(layer.params["bias"], requires_grad=True)
        t, bt, l, r = layer.pads
        if t == bt == l == r:
            return lambda x: F.conv2d(x, w, b, layer.stride, padding=t)
        return lambda x: F.conv2d(F.pad(x, (l, r, t, bt)), w, b, layer.stride)
    if isinstance(layer, Dense):
        w = torch.tensor(layer.params["weight"], requires_grad=True)
        b = torch.tensor(layer.params["bias"], requires_grad=True)
        return lambda x: F.linear(x, w, b)
    if isinstance(layer, Activation):
        return F.relu
    if isinstance(layer, Flatten):
        return lambda x: torch.flatten(x, 1)
    return lambda x: F.max_pool2d(x, layer.size, layer.stride)


def _ms(fn, inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) * 1e3 / inner


def worker(framework: str, net: str, threads: int, rounds: int) -> dict[str, float]:
    """Best ms of every job of ``net`` in this process; jobs are interleaved across rounds.
    ``framework``: "netbuilder", "unfused" (netbuilder, each relu its own layer) or "torch"."""
    import numpy as np

    from netbuilder.core.cli import prepare_process
    from netbuilder.core.layers import parallel
    from netbuilder.core.losses import SoftmaxCrossEntropy

    parallel.set_threads(threads)
    if framework != "torch":
        prepare_process()  # as the CLI and the app set the process up
        parallel.blas_single_threaded().__enter__()  # as a training run holds it; this process ends after
    layers, in_shape = netbuilder_layers(net, fused=framework != "unfused")
    rng = np.random.default_rng(1)
    x0 = rng.random(in_shape, dtype=np.float32)
    labels = rng.integers(0, 10, BATCH)
    onehot = np.eye(10, dtype=np.float32)[labels]
    loss = SoftmaxCrossEntropy()

    # the real inputs and gradients of every layer, in the layouts they arrive in
    inputs, x = [], x0
    for _, layer in layers:
        inputs.append(x)
        x = layer.forward(x, True)
    _, g = loss.value_and_grad(x, onehot)
    grads = [None] * len(layers)
    for k in range(len(layers) - 1, -1, -1):
        grads[k] = g
        g = layers[k][1].backward(g)

    jobs = []
    if framework != "torch":
        for (name, layer), xin, gin in zip(layers, inputs, grads):
            def job(layer=layer, xin=xin, gin=gin):
                layer.forward(xin, True)
                layer.backward(gin)
            jobs.append((name, job))

        def step():
            # like torch's step, where the input needs no gradient, the first layer skips it
            first = layers[0][1]
            first.needs_input_grad = False
            h = x0
            for _, layer in layers:
                h = layer.forward(h, True)
            _, g = loss.value_and_grad(h, onehot)
            for _, layer in reversed(layers):
                g = layer.backward(g)
            first.needs_input_grad = True
    else:
        import torch

        torch.set_num_threads(threads)
        fns = [torch_fn(layer, torch) for _, layer in layers]
        for (name, _), fn, xin, gin in zip(layers, fns, inputs, grads):
            tx = torch.tensor(np.ascontiguousarray(xin), requires_grad=True)
            tg = torch.tensor(np.ascontiguousarray(gin))
            jobs.append((name, lambda fn=fn, tx=tx, tg=tg: fn(tx).backward(tg)))
        tx0, tlabels = torch.from_numpy(x0), torch.from_numpy(labels)

        def step():
            h = tx0
            for fn in fns:
                h = fn(h)
            torch.nn.functional.cross_entropy(h, tlabels).backward()
    jobs.append(("whole step", step))

    inner = {}
    for name, job in jobs:  # warm up, and size each inner loop to ~15 ms
        job()
        inner[name] = max(1, int(15 / max(_ms(job, 1), 0.02)))
    times: dict[str, list[float]] = {name: [] for name, _ in jobs}
    for _ in range(rounds):
        for name, job in jobs:
            times[name].append(_ms(job, inner[name]))
    return {name: min(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the two frameworks")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--net", choices=list(NETS), action="append")
    ap.add_argument("--unfused", action="store_true", help="add netbuilder with every relu a layer of its own")
    ap.add_argument("--worker", choices=["netbuilder", "unfused", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.net[0], args.threads, 5)))
        return

    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    print(f"batch {BATCH}, {args.threads} threads, ms per forward + backward, "
          f"best of {args.rounds} alternating rounds of 5 repetitions")
    for net in args.net or list(NETS):
        runs: dict[str, list[dict]] = {"netbuilder": [], "torch": [], **({"unfused": []} if args.unfused else {})}
        for _ in range(args.rounds):
            for fw in runs:
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", fw, "--net", net, "--threads", str(args.threads)],
                    env=env, check=True, capture_output=True, text=True, cwd=ROOT)
                runs[fw].append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = {fw: {k: min(r[k] for r in rs) for k in rs[0]} for fw, rs in runs.items()}
        extra = f" {'unfused':>8} {'nb/unf':>7}" if args.unfused else ""
        print(f"\n{net}\n{'layer':32} {'netbuilder':>10} {'torch':>8} {'nb/torch':>9}{extra}")
        total = [0.0, 0.0, 0.0]

        def row(name: str, a: float, b: float, c: float | None) -> str:
            more = f" {c:8.3f} {a / c if c else 0:7.2f}" if c is not None else ""
            return f"{name:32} {a:10.3f} {b:8.3f} {a / b:9.2f}{more}"

        for name in best["netbuilder"]:
            a, b = best["netbuilder"][name], best["torch"][name]
            c = best["unfused"][name] if args.unfused else None
            if name == "whole step":
                print(row("sum of layers", total[0], total[1], total[2] if args.unfused else None))
            else:
                total[0] += a
                total[1] += b
                total[2] += c or 0.0
            print(row(name, a, b, c))


if __name__ == "__main__":
    main()
