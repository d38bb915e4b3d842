"""Training and inference speed and peak memory of the engine against PyTorch, same run.

Trains LeNet-5 (1x28x28) and a CIFAR-sized net (3x32x32) at batch 64 with SGD + momentum in
float32, netbuilder and PyTorch alternating, each in its own subprocess on 2 threads (so peak
memory is each one's own). Prints images/s, ratios and peak RSS; the last line reads
``ratio lenet5=<x> cifar=<y>`` (netbuilder training images/s / PyTorch's).

    python bench/engine.py [--seconds 4] [--rounds 2] [--threads 2] [--no-unset-blas]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64

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


def _project(net: str):
    from netbuilder.core.project import Project, TrainingSettings

    shape, blocks = NETS[net]
    return Project(name=net, input_shape=shape, num_classes=10, blocks=blocks,
                   training=TrainingSettings(optimizer="momentum", learning_rate=0.01, momentum=0.9,
                                             batch_size=BATCH, seed=0))


def _timed(step, seconds: float) -> float:
    """Images per second of ``step`` (one batch) over about ``seconds``, after a warm-up."""
    for _ in range(5):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n * BATCH / (time.perf_counter() - start)


def worker(framework: str, net: str, seconds: float, threads: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    project = _project(net)
    xs = rng.random((8, BATCH, *project.input_shape), dtype=np.float32)
    ys = rng.integers(0, 10, (8, BATCH))
    rss_before = _peak_mb()
    i = [0]
    if framework == "netbuilder":
        from netbuilder.core.cli import prepare_process
        from netbuilder.core.layers.parallel import blas_single_threaded
        from netbuilder.core.network import Network
        from netbuilder.core.optimizers import make_optimizer

        prepare_process()  # as the CLI and the app set the process up
        blas_single_threaded().__enter__()  # as a training run holds it; this process ends after
        model = Network(project)
        opt = make_optimizer(project.training)

        def train():
            k = i[0] = (i[0] + 1) % 8
            model.train_step(xs[k], ys[k])
            opt.step(model.parameters(), model.gradients())

        def infer():
            k = i[0] = (i[0] + 1) % 8
            model.forward(xs[k])
    else:
        import torch
        import torch.nn.functional as F

        from netbuilder.core.network import Network
        from netbuilder.core.torch_bridge import torch_model

        torch.set_num_threads(threads)
        model = torch_model(Network(project), final_activation=False).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        txs, tys = torch.from_numpy(xs), torch.from_numpy(ys)

        def train():
            k = i[0] = (i[0] + 1) % 8
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(txs[k]), tys[k]).backward()
            opt.step()

        def infer():
            k = i[0] = (i[0] + 1) % 8
            with torch.inference_mode():
                torch.softmax(model(txs[k]), 1)

    train_ips = _timed(train, seconds)
    infer_ips = _timed(infer, seconds / 2)
    return {"train": train_ips, "infer": infer_ips, "peak_mb": _peak_mb(), "import_mb": rss_before}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_worker(framework, net, seconds, threads, env) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", framework, "--net", net, "--seconds", str(seconds),
         "--threads", str(threads)],
        env=env, check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(seconds: float, rounds: int, threads: int, env: dict, label: str) -> dict[str, float]:
    print(f"\n== {label} (batch {BATCH}, {threads} threads, {rounds} alternating rounds of {seconds:g} s) ==")
    print(f"{'net':8} {'framework':11} {'train img/s':>12} {'infer img/s':>12} {'peak MB':>9} {'after import':>13}")
    ratios = {}
    for net in NETS:
        runs = {"netbuilder": [], "pytorch": []}
        for _ in range(rounds):
            for fw in runs:
                runs[fw].append(_run_worker(fw, net, seconds, threads, env))
        med = {fw: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for fw, rs in runs.items()}
        for fw, m in med.items():
            print(f"{net:8} {fw:11} {m['train']:12,.0f} {m['infer']:12,.0f} {m['peak_mb']:9.0f} {m['import_mb']:13.0f}")
        ratios[net] = med["netbuilder"]["train"] / med["pytorch"]["train"]
        print(f"{net:8} ratio       train {ratios[net]:.2f}x   infer "
              f"{med['netbuilder']['infer'] / med['pytorch']['infer']:.2f}x   peak memory "
              f"{med['netbuilder']['peak_mb'] / med['pytorch']['peak_mb']:.2f}x")
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-unset-blas", action="store_true",
                    help="skip the extra run with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset")
    ap.add_argument("--worker", choices=["netbuilder", "pytorch"], help=argparse.SUPPRESS)
    ap.add_argument("--net", choices=list(NETS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.net, args.seconds, args.threads)))
        return

    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    blas = {k: env[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in env}
    if blas and not args.no_unset_blas:
        bare = {k: v for k, v in env.items() if k not in blas}
        r = compare(args.seconds, args.rounds, args.threads, bare, "with OPENBLAS_CORETYPE/L2_SIZE unset")
        print(f"(unset) ratio lenet5={r['lenet5']:.2f} cifar={r['cifar']:.2f}")
    r = compare(args.seconds, args.rounds, args.threads, env,
                "as-is" + (f" ({', '.join(f'{k}={v}' for k, v in blas.items())})" if blas else ""))
    print(f"ratio lenet5={r['lenet5']:.2f} cifar={r['cifar']:.2f}")


if __name__ == "__main__":
    main()
