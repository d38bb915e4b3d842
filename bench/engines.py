"""Training speed and peak memory of each engine on each device present, same run.

Trains LeNet-5 (resources/examples/lenet5.json, 1x28x28), the CIFAR-sized net (3x32x32, as
bench/engine.py defines it) and the small VGG (resources/examples/small_vgg.json, 1x28x28) with
SGD + momentum in float32 through ``make_trainer`` -- the trainers ``netbuilder train`` runs, with
their events, metrics and divergence checks -- on random images, no validation split:

- ``numpy``: netbuilder's own engine, on every core the process may use (its layers split the
  work; BLAS on one thread, as the CLI sets it);
- ``torch cpu``: the torch engine on the CPU, at 1 intra-op thread and at every core. On a small
  machine (2 vCPUs) that is busy with other work, torch's spinning OpenMP threads make it up to
  40 times slower than one thread (quiet, two threads are faster), so both are measured and the
  better is the CPU figure (the table shows both, the summary line says which was used);
- ``torch cuda`` (when torch sees a CUDA GPU, the first one) and ``torch mps`` (an Apple GPU).

Each configuration runs in its own subprocess (so peak memory is its own: the process's peak RSS,
as bench/engine.py measures it, and for CUDA ``torch.cuda.max_memory_allocated``), the
configurations alternate within each of ``--rounds`` rounds, and the table gives medians.
Images/s is timed over ``--steps`` batches after ``--warmup`` batches (the first batch's seconds,
which include torch.compile's compilation, are shown apart). ``--amp``, ``--compile`` and
``--channels-last`` apply to the torch runs (the engine's options, off by default).

The last line reads ``engines cpu_torch_vs_numpy=<x> [cuda_vs_numpy=<y>] [mps_vs_numpy=<z>]``:
ratios of training images/s for LeNet-5 (torch's best CPU thread setting over numpy's; the GPU
over numpy's), then ``gmean_cpu=...`` and the like, the geometric means over the nets measured.

    python bench/engines.py [--batch 64] [--steps 30] [--rounds 2] [--amp bf16|fp16] [--compile]
                            [--channels-last] [--devices numpy,cpu,cuda,mps] [--cpu-threads 1|all|both]
                            [--nets lenet5,cifar,small_vgg] [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NET_NAMES = ("lenet5", "cifar", "small_vgg")


def _project(net: str, batch: int):
    import dataclasses

    from netbuilder.core.project import Project, TrainingSettings, load_project
    from netbuilder.core.resources import resource_path

    settings = dict(optimizer="momentum", learning_rate=0.01, momentum=0.9, weight_decay=0.0, batch_size=batch,
                    validation_fraction=0.0, seed=0, epochs=1)
    if net == "cifar":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from engine import NETS  # bench/engine.py's CIFAR-sized net, the one its figures are of

        shape, blocks = NETS["cifar"]
        return Project(name="cifar", input_shape=shape, num_classes=10, blocks=[dict(b) for b in blocks],
                       training=TrainingSettings(**settings))
    project = load_project(resource_path("examples") / f"{net}.json")
    project.training = dataclasses.replace(project.training, **settings)
    return project


def worker(engine: str, device: str, threads: int, net: str, batch: int, warmup: int, steps: int,
           options: dict) -> dict:
    import numpy as np

    from netbuilder.core.cli import prepare_process
    from netbuilder.core.datasets.base import Dataset
    from netbuilder.core.torch_engine import make_trainer
    from netbuilder.core.trainer import BatchEnd, RunEnded

    prepare_process()  # as the CLI sets the process up (BLAS on one thread)
    torch = None
    if engine == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)
    project = _project(net, batch)
    rng = np.random.default_rng(0)
    n = batch * (warmup + steps)
    data = Dataset("random", rng.random((n, *project.input_shape), dtype=np.float32),
                   rng.integers(0, 10, n), [str(i) for i in range(10)])
    project.dataset = {"kind": "random", "normalization": None}
    kwargs = {} if engine == "numpy" else {"device": device, **options}
    trainer = make_trainer(project, data, engine=engine, **kwargs)
    stamps, ended = [], None
    start = time.perf_counter()
    for event in trainer.run(1):
        if isinstance(event, BatchEnd):
            stamps.append(time.perf_counter())
        elif isinstance(event, RunEnded):
            ended = event
    if ended is None or ended.status != "finished":
        raise SystemExit(f"{engine} {device} {net}: {ended.message if ended else 'no end'}")
    timed = stamps[warmup - 1:]
    result = {"ips": (len(timed) - 1) * batch / (timed[-1] - timed[0]), "first_s": stamps[0] - start,
              "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "gpu_mb": None,
              "threads": torch.get_num_threads() if torch is not None else _numpy_threads(),
              "where": getattr(trainer, "device_description", "cpu")}
    if device.startswith("cuda"):
        result["gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    elif device == "mps" and hasattr(torch, "mps") and hasattr(torch.mps, "driver_allocated_memory"):
        result["gpu_mb"] = torch.mps.driver_allocated_memory() / 2**20
    return result


def _numpy_threads() -> int:
    from netbuilder.core.layers.parallel import available_cores

    return available_cores()


_PROBE = """
import json
try:
    import torch
except ImportError:
    print(json.dumps(None))
else:
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    print(json.dumps({"version": torch.__version__, "cuda": torch.cuda.is_available(), "mps": mps}))
"""


def torch_here() -> dict | None:
    """torch's version and devices, asked in a subprocess: this process stays without torch, as
    a child's peak RSS starts from its parent's (Linux counts the parent's pages up to the exec)."""
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def configurations(torch: dict | None, wanted: set[str] | None,
                   cpu_threads: str = "both") -> list[tuple[str, str, int, str]]:
    """(engine, device, torch threads (0: torch's default), label) of what is here, numpy first."""
    from netbuilder.core.layers.parallel import available_cores

    cores = available_cores()
    configs = [("numpy", "cpu", 0, "numpy")]
    torch_devices = []
    if torch is None:
        print("torch is not installed: the numpy engine alone")
    else:
        torch_devices.append("cpu")
        if torch["cuda"]:
            torch_devices.append("cuda:0")
        if torch["mps"]:
            torch_devices.append("mps")
    for device in torch_devices:
        if device == "cpu":
            if cpu_threads in ("1", "both") or cores == 1:
                configs.append(("torch", "cpu", 1, "torch cpu 1t"))
            if cpu_threads in ("all", "both") and cores > 1:
                configs.append(("torch", "cpu", cores, f"torch cpu {cores}t"))
        else:
            configs.append(("torch", device, 0, f"torch {device.partition(':')[0]}"))
    if wanted:
        configs = [c for c in configs if (c[0] if c[0] == "numpy" else c[1].partition(":")[0]) in wanted]
    return configs


def _run_worker(config, net, args, options) -> dict:
    engine, device, threads, _ = config
    env = dict(os.environ)
    if engine == "torch" and threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, __file__, "--worker", json.dumps(
        {"engine": engine, "device": device, "threads": threads, "net": net, "batch": args.batch,
         "warmup": args.warmup, "steps": args.steps, "options": options})]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"  {config[3]} {net}: failed (exit {out.returncode}): {tail}", flush=True)
        return {}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _gmean(values) -> float:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=None, help="timed batches per run (default 30; --quick 8)")
    ap.add_argument("--warmup", type=int, default=None, help="batches before the timing (default 5; --quick 3)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 2; --quick 1)")
    ap.add_argument("--amp", choices=("bf16", "fp16"), help="the torch runs under autocast")
    ap.add_argument("--compile", action="store_true", help="the torch runs through torch.compile")
    ap.add_argument("--channels-last", action="store_true", help="the torch runs in channels-last layout")
    ap.add_argument("--devices", help="only these, comma-separated: numpy, cpu (torch's), cuda, mps")
    ap.add_argument("--cpu-threads", choices=("1", "all", "both"), default="both",
                    help="torch on the CPU at 1 intra-op thread, at every core, or both (the default)")
    ap.add_argument("--nets", default=",".join(NET_NAMES), help=f"comma-separated, of {', '.join(NET_NAMES)}")
    ap.add_argument("--quick", action="store_true", help="one round of few steps: a check that it all runs")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        w = json.loads(args.worker)
        print(json.dumps(worker(w["engine"], w["device"], w["threads"], w["net"], w["batch"], w["warmup"],
                                w["steps"], w["options"])))
        return
    args.steps = args.steps or (8 if args.quick else 30)
    args.warmup = args.warmup or (3 if args.quick else 5)
    args.rounds = args.rounds or (1 if args.quick else 2)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = set(nets) - set(NET_NAMES)
    if unknown:
        ap.error(f"unknown nets {sorted(unknown)}; choose from {', '.join(NET_NAMES)}")
    options = {k: v for k, v in (("amp", args.amp), ("compile", args.compile),
                                 ("channels_last", args.channels_last)) if v}
    wanted = {d.strip() for d in args.devices.split(",")} if args.devices else None
    torch = torch_here()
    configs = configurations(torch, wanted, args.cpu_threads)
    version = f"torch {torch['version']}" if torch else "no torch"
    if not configs:
        print(f"nothing to measure: none of --devices {args.devices} is here ({version})")
        print("engines none")
        return
    described = ", ".join(f"{k}={v}" for k, v in options.items()) or "no options"
    print(f"== training, batch {args.batch}, SGD + momentum, {args.rounds} alternating round"
          f"{'s' if args.rounds != 1 else ''} of {args.warmup} + {args.steps} batches; {version}; "
          f"torch runs: {described} ==", flush=True)
    print(f"{'net':10} {'engine/device':16} {'img/s':>9} {'first batch s':>13} {'peak RSS MB':>11} "
          f"{'GPU MB':>8}", flush=True)
    best: dict[str, dict[str, float]] = {}  # net -> kind ("numpy", "cpu", "cuda", "mps") -> img/s
    cpu_label: dict[str, str] = {}  # net -> the torch CPU thread setting that was faster
    for net in nets:
        runs = {c: [] for c in configs}
        for _ in range(args.rounds):
            for config in configs:
                result = _run_worker(config, net, args, options)
                if result:
                    runs[config].append(result)
        for config, results in runs.items():
            if not results:
                continue
            med = {k: statistics.median(r[k] for r in results) for k in ("ips", "first_s", "peak_mb")}
            gpu = [r["gpu_mb"] for r in results if r["gpu_mb"] is not None]
            gpu_text = f"{statistics.median(gpu):8.0f}" if gpu else f"{'':8}"
            print(f"{net:10} {config[3]:16} {med['ips']:9,.0f} {med['first_s']:13.2f} {med['peak_mb']:11.0f} "
                  f"{gpu_text}", flush=True)
            kind = "numpy" if config[0] == "numpy" else config[1].partition(":")[0]
            if med["ips"] > best.setdefault(net, {}).get(kind, 0.0):
                best[net][kind] = med["ips"]
                if kind == "cpu":
                    cpu_label[net] = config[3]
        line = []
        for kind in ("cpu", "cuda", "mps"):
            if kind in best.get(net, {}) and "numpy" in best[net]:
                label = cpu_label[net] if kind == "cpu" else f"torch {kind}"
                line.append(f"{label} {best[net][kind] / best[net]['numpy']:.2f}x")
        if line:
            print(f"{net:10} vs numpy: {', '.join(line)}", flush=True)
    summary = []
    ref = "lenet5" if "lenet5" in best else (nets[0] if nets else None)
    for kind, name in (("cpu", "cpu_torch_vs_numpy"), ("cuda", "cuda_vs_numpy"), ("mps", "mps_vs_numpy")):
        have = [n for n in best if kind in best[n] and "numpy" in best[n]]
        if ref in have:
            summary.append(f"{name}={best[ref][kind] / best[ref]['numpy']:.2f}")
        if len(have) > 1:
            summary.append(f"gmean_{kind}={_gmean(best[n][kind] / best[n]['numpy'] for n in have):.2f}")
    if not summary:  # no numpy reference measured (--devices without numpy): the GPU's own figure
        for kind in ("cuda", "mps", "cpu"):
            if ref in best and kind in best[ref]:
                summary.append(f"{kind}_{ref}_images_per_s={best[ref][kind]:.0f}")
    if cpu_label:
        chosen = ", ".join(f"{n} {label.rpartition(' ')[2]}" for n, label in cpu_label.items())
        print(f"(torch on the CPU: the better of 1 thread and every core is used, per net: {chosen})")
    print("engines " + " ".join(summary), flush=True)


if __name__ == "__main__":
    main()
