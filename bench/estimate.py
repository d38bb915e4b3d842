"""How close the summary's training-time estimate comes to a measured epoch, per bundled example.

Trains one epoch of each example through the trainer (the path the CLI and the window use) and
prints the estimate beside the measured time; the last line reads ``ratio <example>=<estimate /
measured> ...`` (1.0 is exact; the estimate aims to be within a few times, never a surprise).

    python bench/estimate.py [--examples lenet5 mlp small_vgg]
"""
from __future__ import annotations

import argparse
import time

from netbuilder.core.cli import prepare_process
from netbuilder.core.datasets.registry import load_project_dataset
from netbuilder.core.inference import infer
from netbuilder.core.project import load_project
from netbuilder.core.resources import example_path
from netbuilder.core.speed import duration_text, project_estimate, step_overhead, training_rate
from netbuilder.core.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", default=["lenet5", "mlp", "small_vgg"])
    args = parser.parse_args()
    prepare_process()
    print(f"calibration: {training_rate() / 1e9:.2f} G multiply-adds/s in training, "
          f"{step_overhead() * 1e3:.2f} ms per step beyond them")
    ratios = []
    for name in args.examples:
        project = load_project(example_path(name))
        estimate = project_estimate(project, infer(project).total_macs)
        trainer = Trainer(project, load_project_dataset(project))
        start = time.perf_counter()
        for _ in trainer.run(epochs=1):
            pass
        measured = time.perf_counter() - start
        ratios.append(f"{name}={estimate.epoch / measured:.2f}")
        print(f"{name:12s} estimate {duration_text(estimate.epoch):>7s}  measured {duration_text(measured):>7s}"
              f"  ({estimate.samples:,} samples)")
    print("ratio " + " ".join(ratios))


if __name__ == "__main__":
    main()
