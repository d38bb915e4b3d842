"""How much memory a training step needs, estimated from shape inference before anything is
allocated, and what this machine has: so an impossible size is refused with a reason instead of
failing deep inside numpy."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

BYTES = 4  # float32
# Arrays per parameter besides itself: its gradient, plus the optimiser's state.
_PER_PARAMETER = {"sgd": 1, "momentum": 2, "nesterov": 2, "adam": 3}
# Arrays per activation value of the batch: the output kept for backward, its gradient, and the
# layer's own cache (a staged copy of its input, the error term, masks, pooling arg-max) - about
# one more again. A convolution's im2col columns are made chunk by chunk and never all kept.
_PER_ACTIVATION = 3


@lru_cache(maxsize=1)
def machine_memory() -> int | None:
    """This machine's physical memory in bytes ($NETBUILDER_MEMORY_BYTES overrides; None if unknown)."""
    override = os.environ.get("NETBUILDER_MEMORY_BYTES")
    if override:
        return int(override)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step needs: ``total``, and per block (parameters with their gradients and
    optimiser state, plus the batch's activations)."""

    total: int
    per_block: tuple[int, ...]


def training_memory(blocks, input_shape, batch_size: int, optimizer: str) -> MemoryEstimate:
    """The estimate for ``blocks`` (BlockInfo of a valid pipeline) at ``batch_size``."""
    per_parameter = 1 + _PER_PARAMETER.get(optimizer, 3)
    per_block = tuple(b.params * BYTES * per_parameter + b.activation_bytes * batch_size * _PER_ACTIVATION
                      for b in blocks)
    inputs = BYTES * batch_size * _product(input_shape)
    return MemoryEstimate(inputs + sum(per_block), per_block)


def size_text(n: float) -> str:
    """Bytes for people: "186 GiB", "3.1 GiB", "51.2 MiB", "512.0 KiB", "80 bytes"."""
    if n >= 100 * 2**30:
        return f"{n / 2**30:,.0f} GiB"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{int(n):,} bytes"


def memory_problems(blocks, raw_blocks, input_shape, batch_size: int, optimizer: str,
                    available: int | None) -> list[tuple[str, str, int | None, str | None]]:
    """(severity, message, block index or None, field) for what cannot fit in ``available`` bytes
    (an error) or needs more than half of it (a warning)."""
    if available is None or not blocks:
        return []
    for b, raw in zip(blocks, raw_blocks):  # the first block too large: those after it may only follow it
        weights = b.params * BYTES
        if weights > available:
            what, field = _weights_described(b, raw)
            return [("error", f"block {b.index + 1} ({b.kind}): {what} need {size_text(weights)} for weights "
                              f"alone; this machine has {size_text(available)}", b.index, field)]
    per_parameter = 1 + _PER_PARAMETER.get(optimizer, 3)
    state = sum(b.params for b in blocks) * BYTES * per_parameter
    if state > available:
        return [("error", f"the weights with their gradients and {optimizer}'s state need {size_text(state)}; "
                          f"this machine has {size_text(available)}: use fewer filters or units"
                          + (" or the sgd optimizer" if per_parameter > 2 else ""), None, "training.optimizer")]
    estimate = training_memory(blocks, input_shape, batch_size, optimizer)
    if estimate.total <= available / 2:
        return []
    worst = max(range(len(blocks)), key=lambda i: estimate.per_block[i])
    b = blocks[worst]
    share = f"block {b.index + 1} ({b.kind}) alone {size_text(estimate.per_block[worst])}"
    if estimate.total > available:
        return [("error", f"a training step needs about {size_text(estimate.total)} at batch size {batch_size} "
                          f"({share}); this machine has {size_text(available)}: use a smaller batch size or "
                          "smaller blocks", None, "training.batch_size")]
    return [("warning", f"a training step needs about {size_text(estimate.total)} at batch size {batch_size}, "
                        f"more than half of this machine's {size_text(available)} ({share})", None,
             "training.batch_size")]


def _weights_described(b, raw) -> tuple[str, str | None]:
    """What makes a block's weights ("1,000,000,000 filters of 1x5x5") and the field to change."""
    from netbuilder.core.blocks import KINDS

    spec = KINDS.get(b.kind)
    return spec.weights_text(b) if spec is not None else (f"{b.params:,} parameters", None)


def _product(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
