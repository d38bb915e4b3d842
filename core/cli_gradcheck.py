"""``netbuilder gradcheck PROJECT``: check the engine's backpropagation on a project's own network and
data by float64 central differences (``netbuilder.core.gradcheck``); exit 1 when a block fails."""
from __future__ import annotations

import json
import sys

from netbuilder.core.cli_common import (
    EXIT_ERROR,
    EXIT_OK,
    error,
    open_valid_project,
    read_trained_weights,
)


def add_parser(commands) -> None:
    from netbuilder.core.cli_train import positive_int
    from netbuilder.core.gradcheck import DEFAULT_BATCH, DEFAULT_SAMPLES, TOLERANCE

    check = commands.add_parser(
        "gradcheck", help="check the network's gradients by finite differences",
        description="Compare the engine's backpropagated gradients of the project's loss with float64 central "
                    "differences, on the project's network (fresh weights from its seed, or --weights) and the first "
                    "B training images of its dataset (random inputs if it cannot be loaded), for N sampled "
                    "parameters of every block, the blocks inside groups too. Prints each block's largest relative "
                    f"error; a block passes below {TOLERANCE:.0e}. Parameters whose perturbation would cross a kink "
                    "(ReLU at 0, tied maxima) are differenced on one side of it, or skipped and counted. "
                    "Exit code 1 when a block fails.")
    check.add_argument("project", metavar="PROJECT", help="project file (.json), or a bundled example's name")
    check.add_argument("--samples", type=positive_int, default=DEFAULT_SAMPLES, metavar="N",
                       help=f"parameters checked per block (default: {DEFAULT_SAMPLES})")
    check.add_argument("--batch", type=positive_int, default=DEFAULT_BATCH, metavar="B",
                       help=f"images in the batch (default: {DEFAULT_BATCH})")
    check.add_argument("--weights", metavar="WEIGHTS", help="check at these trained weights (.npz or checkpoint)")
    check.add_argument("--seed", type=int, default=0, help="seed of the sampled parameters (default: 0)")
    check.add_argument("--json", action="store_true", help="print the report as one JSON object")
    check.set_defaults(run=run)


def run(args) -> int:
    from netbuilder.core.gradcheck import check_project, format_report

    opened = open_valid_project(args.project)
    if isinstance(opened, int):
        return opened
    path, project, _ = opened
    state = None
    if args.weights is not None:
        state = read_trained_weights(project, args.weights)
        if state is None:
            return EXIT_ERROR
    try:
        report = check_project(project, args.samples, args.batch, path.parent, args.seed, state)
    except ValueError as exc:  # weights that do not fit the network
        error(str(exc))
        return EXIT_ERROR
    if args.json:
        print(json.dumps(report.to_dict()), flush=True)
    else:
        if report.random_data:
            error(f"checking on {report.data}")
        print(format_report(report), flush=True)
    sys.stdout.flush()
    return EXIT_OK if report.passed else EXIT_ERROR
