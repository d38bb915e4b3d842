"""Time per infer() call for 10- and 100-block pipelines (target: well under 1 ms for 100 blocks).

Run: python bench/inference.py
"""
from __future__ import annotations

import timeit

from netbuilder.core.inference import infer
from netbuilder.core.project import Project

_UNIT = [
    {"kind": "conv", "filters": 8, "kernel_size": [3, 3], "padding": "same", "activation": "relu"},
    {"kind": "activation", "activation": "tanh"},
    {"kind": "dropout", "rate": 0.1},
    {"kind": "pool", "mode": "max", "size": 3, "stride": 1, "padding": 1},
    {"kind": "conv", "filters": 8, "kernel_size": 3, "stride": 1, "padding": [1, 1], "name": "c"},
]


def pipeline(n_blocks: int) -> Project:
    """``n_blocks`` blocks: repeated conv/activation/dropout/pool units, then flatten, dense 10 softmax."""
    blocks = []
    while len(blocks) < n_blocks - 2:
        block = dict(_UNIT[len(blocks) % len(_UNIT)])
        if "name" in block:
            block["name"] = f"c{len(blocks)}"
        blocks.append(block)
    blocks += [{"kind": "flatten"}, {"kind": "dense", "units": 10, "activation": "softmax"}]
    return Project(name=f"bench{n_blocks}", input_shape=(3, 32, 32), blocks=blocks)


def main() -> None:
    for n in (10, 100):
        project = pipeline(n)
        result = infer(project)
        assert result.ok, result.errors
        runs, best = 200, float("inf")
        for _ in range(5):
            best = min(best, timeit.timeit(lambda p=project: infer(p), number=runs) / runs)
        print(f"{n:4d} blocks: {best * 1e6:8.1f} us per infer()  ({best * 1e6 / n:.2f} us per block)")


if __name__ == "__main__":
    main()
