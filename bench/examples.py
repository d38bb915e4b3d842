"""Each group example against its plain counterpart: test accuracy, parameters and seconds, same run.

For every example built from groups (``resnet_small``, ``inception_mini``) a plain counterpart is
derived from the example itself, block for block, so the two differ only in what the groups add:

* ``resnet_small`` -> its residual groups unwrapped: each group's inner blocks in a row, the
  group's activation moved onto the last of them, the skip (and its 1x1 stride-2 projection, the
  only parameters it removes) gone. The same depth, widths, BatchNorm and pooling, a few hundred
  parameters fewer: what the skips themselves buy, which a plain stack of a different shape
  would not isolate.
* ``inception_mini`` -> each branch group replaced by its one widest path (1x1 then 3x3) whose
  last convolution is widened to the group's concatenated width, so the blocks after it see the
  same channels: the README's "same net with one widened path instead of the branches" (13,090
  parameters against the example's 8,610).

Both nets of a pair train on the same data, for the same epochs (2 unless ``--epochs``), with the
example's own training settings (optimizer, learning rate, batch size, validation share; ``--lr``
and ``--batch-size`` override them for both alike), once per seed (the seed draws
the weights, the validation split and the shuffling, the same for both); each is then scored on
the data's test split. Prints one line per run, then per example the mean and spread over the
seeds; the last line reads ``accuracy <example>=<group net %>/<plain net %> ...`` (means).

    python bench/examples.py [--examples resnet_small inception_mini] [--seeds 3] [--epochs 2]
                             [--dataset fashion-mnist|shapes|project] [--limit N]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time

import numpy as np

from netbuilder.core.cli import prepare_process
from netbuilder.core.datasets import load_dataset
from netbuilder.core.datasets.base import Dataset
from netbuilder.core.datasets.registry import load_project_dataset
from netbuilder.core.inference import infer
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.core.trainer import Trainer

EXAMPLES = ["resnet_small", "inception_mini"]


def unwrap_residuals(blocks: list[dict]) -> list[dict]:
    """``blocks`` with every residual group replaced by its inner blocks, the group's activation on the last."""
    out = []
    for block in blocks:
        if block["kind"] != "residual":
            out.append(copy.deepcopy(block))
            continue
        inner = unwrap_residuals(block["blocks"])
        if inner[-1].get("activation", "identity") != "identity":
            raise ValueError("a residual group's last inner block already has an activation; cannot move the group's")
        inner[-1]["activation"] = block["activation"]
        out += inner
    return out


def widest_paths(blocks: list[dict], channels: list[int]) -> list[dict]:
    """``blocks`` with every branch group replaced by its longest path, its last convolution widened
    to the group's output width (``channels``, one per group in order, taken from the example)."""
    out, widths = [], iter(channels)
    for block in blocks:
        if block["kind"] != "branches":
            out.append(copy.deepcopy(block))
            continue
        path = copy.deepcopy(max(block["paths"], key=len))
        convs = [b for b in path if b["kind"] == "conv"]
        convs[-1]["filters"] = next(widths)
        out += path
    return out


def plain_counterpart(name: str, project):
    """The example's plain net (see the module's docstring), as a project with the same settings."""
    plain = copy.deepcopy(project)
    if name == "resnet_small":
        plain.blocks = unwrap_residuals(project.blocks)
    elif name == "inception_mini":
        widths = [b.output_shape[0] for b in infer(project).blocks if b.kind == "branches"]
        plain.blocks = widest_paths(project.blocks, widths)
    else:
        raise ValueError(f"no plain counterpart for {name!r}")
    plain.name = f"{project.name} (plain)"
    return plain


def subset(data: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """``limit`` training images drawn at random, the same for every net (all when None); the test split stays whole."""
    if limit is None or limit >= len(data.y_train):
        return data
    order = np.random.default_rng(seed).permutation(len(data.y_train))[:limit]
    order.sort()
    return dataclasses.replace(data, x_train=data.x_train[order], y_train=data.y_train[order])


def run(project, data: Dataset, seed: int, epochs: int) -> tuple[int, float, float]:
    """Parameters, test accuracy and seconds of one training run of ``project`` with ``seed``."""
    project = copy.deepcopy(project)
    project.training = dataclasses.replace(project.training, seed=seed, epochs=epochs)
    trainer = Trainer(project, data)
    start = time.perf_counter()
    for _ in trainer.run(epochs=epochs):
        pass
    seconds = time.perf_counter() - start
    net = trainer.network
    accuracy = float((net.classify(net.predict(data.x_test)) == data.y_test).mean())
    return net.num_params, accuracy, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", default=EXAMPLES, choices=EXAMPLES)
    parser.add_argument("--seeds", type=int, default=3, help="runs per net, seeds 0, 1, ... (default 3)")
    parser.add_argument("--epochs", type=int, default=2, help="both nets alike (default 2, as in the README)")
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "shapes", "project"],
                        help="project: the example's own dataset spec (default fashion-mnist)")
    parser.add_argument("--limit", type=int, default=None, help="train on this many images (the test split whole)")
    parser.add_argument("--lr", type=float, default=None, help="override the learning rate of both nets")
    parser.add_argument("--batch-size", type=int, default=None, help="override the batch size of both nets")
    args = parser.parse_args()
    prepare_process()
    cache: dict[str, Dataset] = {}
    summary = []
    for name in args.examples:
        group = load_project(example_path(name))
        if args.lr is not None:
            group.training = dataclasses.replace(group.training, learning_rate=args.lr)
        if args.batch_size is not None:
            group.training = dataclasses.replace(group.training, batch_size=args.batch_size)
        if args.dataset != "project":
            group.dataset = {"kind": args.dataset}
        key = repr(sorted(group.dataset.items()))
        if key not in cache:
            full = load_project_dataset(group) if args.dataset == "project" else load_dataset(group.dataset)
            cache[key] = subset(full, args.limit)
        data = cache[key]
        plain = plain_counterpart(name, group)
        epochs = args.epochs
        t = group.training
        print(f"{name}: {data.name}, {len(data.y_train):,} training images, {len(data.y_test):,} test; "
              f"{epochs} epochs, {t.optimizer} lr {t.learning_rate:g}, batch {t.batch_size}, "
              f"seeds 0..{args.seeds - 1}", flush=True)
        results: dict[str, list[tuple[int, float, float]]] = {"group": [], "plain": []}
        for seed in range(args.seeds):
            for label, project in (("group", group), ("plain", plain)):
                params, accuracy, seconds = run(project, data, seed, epochs)
                results[label].append((params, accuracy, seconds))
                print(f"  {label:5s} seed {seed}  {params:>7,} params  test {100 * accuracy:5.1f}%  "
                      f"{seconds:6.0f} s", flush=True)
        means = {}
        for label, rows in results.items():
            accs = [100 * a for _, a, _ in rows]
            means[label] = statistics.fmean(accs)
            spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(f"  {label:5s} mean  {rows[0][0]:>7,} params  test {means[label]:5.1f}% ± {spread:.1f}  "
                  f"{statistics.fmean(s for _, _, s in rows):6.0f} s per run  "
                  f"(min {min(accs):.1f}, max {max(accs):.1f})", flush=True)
        wins = sum(g[1] > p[1] for g, p in zip(results["group"], results["plain"]))
        print(f"  {name} {'beats' if means['group'] > means['plain'] else 'does not beat'} its plain net by "
              f"{means['group'] - means['plain']:+.1f} points (wins {wins} of {args.seeds} seeds)", flush=True)
        summary.append(f"{name}={means['group']:.1f}/{means['plain']:.1f}")
    print("accuracy " + " ".join(summary))


if __name__ == "__main__":
    main()
