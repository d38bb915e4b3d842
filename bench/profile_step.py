"""Where one training step of the numpy engine goes: a table of shares, LeNet-5 and CIFAR-sized.

Times ``--steps`` training steps (forward, backward, SGD) at batch 64 on one thread and sorts
the time into the columns the engine work is judged by: the convolution GEMMs, im2col and
staging copies, col2im (the input gradient's scatter), pooling forward + backward, activations
(their own layer, or fused into a conv or dense layer), dense layers, BatchNorm, the loss and
the optimiser, and the rest (Python between layers, flatten, dropout). Each layer's forward
and backward are timed whole; inside the convolution, its matmuls and its col2im are timed
apart, so the conv column is split into GEMM, col2im and the copies that are left.

    python bench/profile_step.py [--steps 30] [--nets lenet5,cifar]

One thread, so that every timer measures work of its own and the shares add up.
"""
from __future__ import annotations

import argparse
import sys
import time
import types
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

COLUMNS = ["conv GEMM", "im2col+staging", "col2im", "pooling", "activation", "dense", "batchnorm",
           "loss+optimizer", "other"]
_FUSED = ("maximum", "greater", "where", "multiply", "clip")  # numpy calls of a fused activation


class _Clock:
    """Seconds spent by name; a timed call inside another timed call is taken out of the outer one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner = [0.0]  # time of timed calls made inside the current one

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            self._inner.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                inner = self._inner.pop()
                self.seconds[name] += spent - inner
                self._inner[-1] += spent
        return timed


def _instrument(clock: _Clock) -> None:
    """Time every layer class's forward/backward, the conv module's numpy calls and col2im."""
    import numpy as np

    from netbuilder.core import layers as layers_pkg
    from netbuilder.core import losses, optimizers
    from netbuilder.core.layers import batchnorm, conv, dense, global_pool, groups

    kinds = {"Conv2D": "conv", "Dense": "dense", "Activation": "activation"}
    classes = {cls for module in (layers_pkg, batchnorm, global_pool, groups) for cls in vars(module).values()
               if isinstance(cls, type) and issubclass(cls, layers_pkg.Layer)}
    for cls in classes:
        name = cls.__name__
        kind = kinds.get(name, "pooling" if "Pool" in name else "batchnorm" if "BatchNorm" in name else "other")
        for method in ("forward", "backward"):
            if method in vars(cls):
                setattr(cls, method, clock.wrap(kind, vars(cls)[method]))
    for module, kind in ((conv, "conv"), (dense, "dense")):
        proxy = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
        proxy.matmul = clock.wrap(f"{kind} GEMM", np.matmul)
        for op in _FUSED:
            setattr(proxy, op, clock.wrap("activation", getattr(np, op)))
        module.np = proxy
    for module in (conv, dense):  # a relu the layer applies itself (core/layers/activation.py's helpers)
        for attr in ("fused_forward", "fused_backward"):
            if hasattr(module, attr):
                setattr(module, attr, clock.wrap("activation", getattr(module, attr)))
    for attr in dir(conv):
        if "col2im" in attr and callable(getattr(conv, attr)):
            setattr(conv, attr, clock.wrap("col2im", getattr(conv, attr)))
    for cls in (optimizers.Optimizer, *optimizers.Optimizer.__subclasses__()):
        if "step" in vars(cls):
            cls.step = clock.wrap("loss+optimizer", vars(cls)["step"])
    for cls in (losses.Loss, *losses.Loss.__subclasses__()):
        if "value_and_grad" in vars(cls):
            cls.value_and_grad = clock.wrap("loss+optimizer", vars(cls)["value_and_grad"])


def profile(net: str, steps: int) -> dict[str, float]:
    """Seconds per step in each column for ``net`` (a name in bench/engine.py's NETS)."""
    import numpy as np
    from engine import _project

    from netbuilder.core.layers import parallel
    from netbuilder.core.layers.parallel import blas_single_threaded
    from netbuilder.core.network import Network
    from netbuilder.core.optimizers import make_optimizer

    parallel.set_threads(1)
    project = _project(net)
    rng = np.random.default_rng(0)
    xs = rng.random((4, 64, *project.input_shape), dtype=np.float32)
    ys = rng.integers(0, 10, (4, 64))
    model, opt = Network(project), make_optimizer(project.training)
    clock = _Clock()

    def step(k: int) -> None:
        model.train_step(xs[k % 4], ys[k % 4])
        opt.step(model.parameters(), model.gradients())

    with blas_single_threaded():
        for k in range(3):  # warm-up: plans and buffers made
            step(k)
        _instrument(clock)
        clock.seconds.clear()
        start = time.perf_counter()
        for k in range(steps):
            step(k)
        total = time.perf_counter() - start
    seconds = dict(clock.seconds)
    shares = dict.fromkeys(COLUMNS, 0.0)
    shares["conv GEMM"] = seconds.pop("conv GEMM", 0.0)
    shares["col2im"] = seconds.pop("col2im", 0.0)
    shares["im2col+staging"] = seconds.pop("conv", 0.0)
    shares["dense"] = seconds.pop("dense GEMM", 0.0) + seconds.pop("dense", 0.0)
    for name, value in seconds.items():
        shares[name if name in shares else "other"] += value
    shares["other"] += total - sum(shares.values())  # Python between the timed calls
    return {k: v / steps for k, v in shares.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--nets", default="lenet5,cifar")
    args = parser.parse_args(argv)
    nets = args.nets.split(",")
    rows = {net: profile(net, args.steps) for net in nets}
    print(f"one training step, batch 64, 1 thread, {args.steps} steps timed")
    print(f"{'':>16} " + "  ".join(f"{net:>14}" for net in nets))
    for col in COLUMNS:
        cells = []
        for net in nets:
            total = sum(rows[net].values())
            cells.append(f"{100 * rows[net][col] / total:5.1f}% {1e3 * rows[net][col]:5.2f}ms")
        print(f"{col:>16} " + "  ".join(f"{c:>14}" for c in cells))
    print(f"{'step':>16} " + "  ".join(f"{1e3 * sum(rows[n].values()):>12.2f}ms" for n in nets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
