"""Accuracy gained by augmentation on Fashion-MNIST: the same net, epochs and seeds, with and without.

Trains ``resources/examples/lenet5_fashion.json`` (and, with ``--examples lenet5_fashion small_vgg``,
the small VGG on Fashion-MNIST too) once per seed with ``training.augmentation`` unset, and once per
seed for every augmentation setting in ``--settings`` (default: ``shift2_flip`` = shift 2 px and
horizontal flip 0.5; ``shift2`` = shift 2 px alone). Everything else is the example's own training
settings (optimizer, learning rate, batch size, validation share), the epochs given by ``--epochs``
(default 3), the seed drawing the weights, the validation split and the shuffling (augmentation
draws from a generator of its own, so the same seed gives the same initial weights and order with
and without it). Each run is scored on the dataset's test split, never augmented.

Every setting run is printed (no setting is left out of the report): one line per run, then per
setting the mean and spread over the seeds and the gain over no augmentation. The last line reads
``augment_accuracy <example>=<with %>/<without %> ...`` (means; ``with`` is the first setting in
``--settings``; further settings follow as ``<example>:<setting>=<with %>/<without %>``).

    python bench/augment_accuracy.py [--examples lenet5_fashion [small_vgg]] [--seeds 2] [--epochs 3]
                                     [--settings shift2_flip shift2] [--limit N]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import time

import numpy as np

from netbuilder.core.augment import Augmentation
from netbuilder.core.cli import prepare_process
from netbuilder.core.datasets.base import Dataset
from netbuilder.core.datasets.registry import load_project_dataset
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.core.trainer import Trainer

EXAMPLES = ["lenet5_fashion", "small_vgg"]
SETTINGS: dict[str, dict] = {
    "shift2_flip": {"shift": 2, "flip": 0.5},
    "shift2": {"shift": 2},
    "flip": {"flip": 0.5},
    "shift2_flip_rotate10": {"shift": 2, "flip": 0.5, "rotate": 10},
}


def subset(data: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """``limit`` training images drawn at random, the same for every run (all when None); the test split stays whole."""
    if limit is None or limit >= len(data.y_train):
        return data
    order = np.random.default_rng(seed).permutation(len(data.y_train))[:limit]
    order.sort()
    return dataclasses.replace(data, x_train=data.x_train[order], y_train=data.y_train[order])


def run(project, data: Dataset, seed: int, epochs: int, augmentation: dict | None) -> tuple[int, float, float]:
    """Parameters, test accuracy and seconds of one training run of ``project`` with ``seed``."""
    project = copy.deepcopy(project)
    project.training = dataclasses.replace(project.training, seed=seed, epochs=epochs,
                                           augmentation=copy.deepcopy(augmentation))
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
    parser.add_argument("--examples", nargs="+", default=["lenet5_fashion"], choices=EXAMPLES)
    parser.add_argument("--seeds", type=int, default=2, help="runs per setting, seeds 0, 1, ... (default 2)")
    parser.add_argument("--epochs", type=int, default=3, help="every run alike (default 3)")
    parser.add_argument("--settings", nargs="+", default=["shift2_flip"], choices=list(SETTINGS),
                        help="augmentations to compare with none (default shift2_flip); all are reported")
    parser.add_argument("--limit", type=int, default=None, help="train on this many images (the test split whole)")
    args = parser.parse_args()
    prepare_process()
    summary = []
    for name in args.examples:
        project = load_project(example_path(name))
        project.dataset = {"kind": "fashion-mnist"}
        data = subset(load_project_dataset(project), args.limit)
        t = project.training
        print(f"{name}: {data.name}, {len(data.y_train):,} training images, {len(data.y_test):,} test; "
              f"{args.epochs} epochs, {t.optimizer} lr {t.learning_rate:g}, batch {t.batch_size}, "
              f"seeds 0..{args.seeds - 1}", flush=True)
        labels = ["none"] + list(args.settings)
        specs = {"none": None, **{s: SETTINGS[s] for s in args.settings}}
        for label in labels:
            described = Augmentation.from_spec(specs[label]).describe() if specs[label] else "no augmentation"
            print(f"  {label}: {described}", flush=True)
        results: dict[str, list[tuple[int, float, float]]] = {label: [] for label in labels}
        for seed in range(args.seeds):
            for label in labels:
                params, accuracy, seconds = run(project, data, seed, args.epochs, specs[label])
                results[label].append((params, accuracy, seconds))
                print(f"  {label:20s} seed {seed}  {params:>7,} params  test {100 * accuracy:5.2f}%  "
                      f"{seconds:6.1f} s", flush=True)
        means = {}
        for label in labels:
            rows = results[label]
            accs = [100 * a for _, a, _ in rows]
            means[label] = statistics.fmean(accs)
            spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(f"  {label:20s} mean    {rows[0][0]:>7,} params  test {means[label]:5.2f}% ± {spread:.2f}  "
                  f"{statistics.fmean(s for _, _, s in rows):6.1f} s per run  "
                  f"(min {min(accs):.2f}, max {max(accs):.2f})", flush=True)
        for label in args.settings:
            wins = sum(a[1] > b[1] for a, b in zip(results[label], results["none"]))
            print(f"  {name} {label}: {means[label] - means['none']:+.2f} points over no augmentation "
                  f"(better on {wins} of {args.seeds} seeds)", flush=True)
        first = args.settings[0]
        summary.append(f"{name}={means[first]:.2f}/{means['none']:.2f}")
        summary += [f"{name}:{s}={means[s]:.2f}/{means['none']:.2f}" for s in args.settings[1:]]
    print("augment_accuracy " + " ".join(summary))


if __name__ == "__main__":
    main()
