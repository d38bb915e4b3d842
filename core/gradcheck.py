"""Check the engine's backpropagation on a user's own network: central differences in float64.

``check_gradients(project, x, y)`` builds the project's network in float64 (or takes given weights),
computes every parameter's gradient of the project's loss on the batch ``(x, y)`` by backpropagation
(``Network.train_step``), and compares a sample of the parameters of every block, the blocks inside
groups too, with the central difference ``(L(θ + h) - L(θ - h)) / 2h`` of the same loss, in the same
mode: training mode (BatchNorm uses the batch's statistics), with every dropout mask fixed (drawn
once from the check's seed, the same for every evaluation), so both sides differentiate one function.
A top-level block without parameters (pooling, flatten, dropout, activation) and a group (its skip
or merge) are checked through their input instead: the gradient of the loss with respect to the
block's input, as the layers' backward chain it, against perturbing entries of that input and
running the rest of the network.

The relative error of one parameter is ``|analytic - numeric| / max(|analytic| + |numeric|, floor)``;
``floor`` keeps a gradient that is zero up to rounding (a dead ReLU's weight) from dividing rounding
noise by nearly nothing: below it the difference is measured against ``floor``. A block passes when
its largest relative error is below ``TOLERANCE`` (1e-6).

Kinks. ReLU and leaky ReLU at 0, max pooling (windowed and global) between tied values are not
differentiable; there the two one-sided differences disagree and the central difference is not the
engine's (one-sided) gradient, however correct that is. The step ``h`` (1e-6) is far below the usual
distance to a kink, and every evaluation records which side of each kink the network is on: the sign
pattern of every ReLU/leaky ReLU input and the winner of every max-pool window. A parameter whose
``θ + h`` or ``θ - h`` changes that pattern crossed a kink: it is skipped and counted, not compared.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from netbuilder.core.blocks import KINDS
from netbuilder.core.layers import Activation
from netbuilder.core.layers.dropout import Dropout
from netbuilder.core.layers.global_pool import GlobalPool
from netbuilder.core.layers.groups import walk
from netbuilder.core.layers.pool import Pool2D

TOLERANCE = 1e-6
STEP = 1e-5
FLOOR = 1e-3  # see the module docstring: rounding noise of a float64 central difference is ~1e-10
DEFAULT_SAMPLES = 20
DEFAULT_BATCH = 8


@dataclass
class BlockResult:
    """One block's figures. ``checked`` counts the compared parameters (the inner blocks' too, for a
    group), ``inputs`` the compared entries of the gradient with respect to the block's input (for a
    top-level block without parameters of its own, and a group: its skip or merge), ``skipped`` those
    whose perturbation crossed a kink; ``max_error`` is None when nothing was compared (a block inside
    a group without parameters)."""

    path: str
    kind: str
    depth: int
    parameters: int
    checked: int = 0
    skipped: int = 0
    max_error: float | None = None
    worst: str = ""  # the entry with the largest error, e.g. "conv1.weight[3, 0, 2, 1]", "pool1 input[0, 2, 5, 1]"
    inputs: int = 0  # compared entries of the gradient with respect to the block's input (top-level blocks)

    @property
    def passed(self) -> bool:
        return self.max_error is None or self.max_error < TOLERANCE

    @property
    def has_parameters(self) -> bool:
        return self.parameters > 0

    def to_dict(self) -> dict:
        return {"block": self.path, "kind": self.kind, "depth": self.depth, "parameters": self.parameters,
                "checked": self.checked, "inputs_checked": self.inputs, "skipped_kinks": self.skipped,
                "max_rel_error": self.max_error, "worst": self.worst, "passed": self.passed}


@dataclass
class GradCheckReport:
    blocks: list[BlockResult]
    batch: int
    data: str  # where the batch came from, in words
    random_data: bool = False
    weights: str = "fresh"  # "fresh" (the project's seed) or "trained"
    step: float = STEP
    tolerance: float = TOLERANCE
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(b.passed for b in self.blocks)

    @property
    def failed(self) -> list[BlockResult]:
        return [b for b in self.blocks if not b.passed]

    @property
    def checked(self) -> int:
        """Compared values: parameters, and the input gradients of top-level blocks."""
        return sum(b.checked + b.inputs for b in self.blocks if b.depth == 0)

    @property
    def skipped(self) -> int:
        return sum(b.skipped for b in self.blocks if b.depth == 0)

    @property
    def max_error(self) -> float | None:
        errors = [b.max_error for b in self.blocks if b.max_error is not None]
        return max(errors) if errors else None

    def verdict(self) -> str:
        worst = self.max_error
        worst_text = f"largest relative error {worst:.1e}" if worst is not None else "nothing to compare"
        kinks = f", {self.skipped} skipped at kinks" if self.skipped else ""
        if self.passed:
            return (f"gradients verified: {self.checked} values in {len(self.blocks)} blocks, {worst_text}"
                    f" (pass below {self.tolerance:.0e}){kinks}")
        names = ", ".join(b.path for b in self.failed)
        return (f"gradients WRONG in {len(self.failed)} block{'s' if len(self.failed) != 1 else ''} ({names}): "
                f"{worst_text}, pass needs below {self.tolerance:.0e}{kinks}")

    def to_dict(self) -> dict:
        return {"passed": self.passed, "batch": self.batch, "data": self.data, "random_data": self.random_data,
                "weights": self.weights, "step": self.step, "tolerance": self.tolerance,
                "checked": self.checked, "skipped_kinks": self.skipped, "max_rel_error": self.max_error,
                "notes": list(self.notes), "blocks": [b.to_dict() for b in self.blocks]}


def format_block(b: BlockResult, width: int = 0) -> str:
    """One line: ``conv1  max rel error 3.1e-09  pass  (40 parameters)``."""
    name = ("  " * b.depth + b.path).ljust(width)
    if b.max_error is None:
        what = "no parameters" if not b.has_parameters else "nothing compared"
        extra = f", {b.skipped} skipped at kinks" if b.skipped else ""
        return f"{name}  {what}{extra}"
    verdict = "pass" if b.passed else "FAIL"
    extra = f", {b.skipped} skipped at kinks" if b.skipped else ""
    worst = f"  worst {b.worst}" if not b.passed and b.worst else ""
    counts = ([f"{b.checked} parameters"] if b.has_parameters else []) + \
        ([f"{b.inputs} input values"] if b.inputs else [])
    return f"{name}  max rel error {b.max_error:.1e}  {verdict}  ({', '.join(counts)}{extra}){worst}"


def format_report(report: GradCheckReport) -> str:
    width = max((len(b.path) + 2 * b.depth for b in report.blocks), default=0)
    lines = [f"gradient check on {report.batch} images ({report.data}), {report.weights} weights, float64, "
             f"step {report.step:.0e}"]
    lines += report.notes
    lines += [format_block(b, width) for b in report.blocks]
    lines.append(report.verdict())
    return "\n".join(lines)


def batch_from_project(project, batch: int = DEFAULT_BATCH, base_dir=None, seed: int = 0):
    """(x, labels, description, random) for the check: the dataset's first ``batch`` training images,
    or random inputs with random labels when the data cannot be loaded (the description says why)."""
    from netbuilder.core.datasets import load_project_dataset

    try:
        data = load_project_dataset(project, base_dir)
        x, y = np.asarray(data.x_train[:batch]), np.asarray(data.y_train[:batch])
        if len(x) == 0:
            raise ValueError("the dataset has no training images")
        return x, y, f"the first {len(x)} training images of {data.name}", False
    except Exception as exc:  # noqa: BLE001 - any failure only means checking on random inputs instead
        rng = np.random.default_rng(seed)
        shape = tuple(int(v) for v in project.input_shape)
        x = rng.random((batch,) + shape)
        classes = max(int(project.num_classes), 2)
        y = rng.integers(0, classes, batch)
        return x, y, f"random inputs: the dataset could not be loaded ({exc})", True


class _FixedRng:
    """Stands in for a Dropout layer's generator: the same mask for the same shape on every forward."""

    def __init__(self, seed: int):
        self.seed = seed

    def random(self, shape, dtype=np.float64):
        return np.random.default_rng(self.seed).random(shape, dtype=dtype)


def _all_layers(network) -> list:
    out = []
    for layer in network.layers:
        out.append(layer)
        out += [child for _, child in walk(layer)]
    return out


def _watch_kinks(network) -> list:
    """Wrap the forward of every layer with a kink so that it records which side of it the batch is
    on; returns the list the records go to (cleared by the caller before each evaluation)."""
    record: list = []
    for layer in _all_layers(network):
        if isinstance(layer, Activation) and layer.name in ("relu", "leaky_relu"):
            def forward(x, training=False, _inner=layer.forward):
                record.append(np.packbits(np.asarray(x) > 0))
                return _inner(x, training)
        elif isinstance(layer, (Pool2D, GlobalPool)) and getattr(layer, "mode", "max") == "max":
            def forward(x, training=False, _inner=layer.forward, _layer=layer):
                y = _inner(x, training)
                saved = getattr(_layer, "_saved", None)
                argmax = saved[-1] if training and saved is not None else None
                record.append(None if argmax is None else np.array(argmax, copy=True))
                return y
        else:
            continue
        layer.forward = forward
    return record


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (u is None and v is None) or (u is not None and v is not None and u.shape == v.shape
                                       and np.array_equal(u, v)) for u, v in zip(a, b))


def _own_parameters(network) -> list[tuple]:
    """(stage, depth, {name: array}) for every stage in walk order; a group's own parameters are
    those not inside one of its inner blocks (a residual's projection)."""
    from netbuilder.core.blocks import KINDS

    out = []

    def visit(stages, depth):
        for stage in stages:
            inner = KINDS[stage.info.kind].inner_stages(stage)
            inner_paths = {s.path for s in inner}
            own = {}
            for prefix, layer in stage.named:
                if prefix in inner_paths or any(prefix.startswith(p + ".") for p in inner_paths):
                    continue
                for k, v in layer.params.items():
                    own[f"{prefix}.{k}"] = v
            out.append((stage, depth, own))
            visit(inner, depth + 1)
    visit(network.stages, 0)
    return out


def _pick(own: dict, samples: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """``samples`` (name, flat index) entries spread over a block's parameter arrays: an even share
    each, what a small array (a bias) cannot take going to the bigger ones."""
    names = sorted((n for n, v in own.items() if v.size), key=lambda n: own[n].size)
    if not names or samples <= 0:
        return []
    picks, left = [], samples
    for i, name in enumerate(names):
        size = own[name].size
        k = min(size, left // (len(names) - i))
        left -= k
        picks += [(name, int(j)) for j in np.sort(rng.choice(size, size=k, replace=False))]
    order = {n: i for i, n in enumerate(own)}
    picks.sort(key=lambda p: (order[p[0]], p[1]))
    return picks


def _label(name: str, shape, j: int) -> str:
    return f"{name}[{', '.join(map(str, np.unravel_index(j, shape)))}]"


def _partial_loss(network, layers: list, held: np.ndarray, targets: np.ndarray, record: list):
    """The loss as a function of ``held``, the input of ``layers`` (the rest of the network)."""
    def loss() -> float:
        record.clear()
        h = held
        for layer in layers:
            h = layer.forward(h, True)
        value, _ = network.loss.value_and_grad(h.reshape(len(h), -1), targets)
        return float(value)
    return loss


def _inputs_and_deltas(network, layers: list, prepared: np.ndarray, targets: np.ndarray):
    """Every layer's input and the gradient of the loss with respect to it, from one training
    forward and the layers' own backward (as ``train_step`` chains them)."""
    first = network._first_weighted
    if first is not None:
        first.needs_input_grad = True  # the input gradient of the first weighted layer is wanted here
    inputs, h = [], prepared
    for layer in layers:
        inputs.append(h)
        h = layer.forward(h, True)
    _, grad = network.loss.value_and_grad(h.reshape(len(h), -1), targets)
    grad = grad.reshape(h.shape)
    deltas = [None] * len(layers)
    for k in reversed(range(len(layers))):
        grad = layers[k].backward(grad)
        deltas[k] = grad
    return inputs, deltas


def _derivative(flat: np.ndarray, j: int, loss, record: list, pattern0: list, step: float) -> float | None:
    """d loss / d flat[j] by differences that stay on the side of every kink that θ is on, or None.

    Central ``(L(θ+h) - L(θ-h)) / 2h`` when neither θ+h nor θ-h changes the kink pattern; else, when
    one side keeps it (θ sits on a kink, as a zero bias over a blank image region puts a ReLU exactly
    at 0), the second-order one-sided ``±(3L(θ) - 4L(θ∓h) + L(θ∓2h)) / 2h`` on that side, whose
    linear piece the engine's convention (ReLU'(0) = 0, the first of tied maxima) differentiates;
    else the same with a step ten times smaller; None when every try crosses a kink.
    """
    old = flat[j]

    def at(delta: float):
        flat[j] = old + delta
        try:
            value = loss()
        finally:
            flat[j] = old
        return value, _same(record, pattern0)

    center = None
    for h in (step, step / 10):
        up, up_ok = at(h)
        down, down_ok = at(-h)
        if up_ok and down_ok:
            return (up - down) / (2 * h)
        for sign, near, ok in ((1.0, up, up_ok), (-1.0, down, down_ok)):
            if ok:
                far, far_ok = at(2 * sign * h)
                if far_ok:
                    if center is None:
                        center, _ = at(0.0)
                    return sign * (4 * near - 3 * center - far) / (2 * h)
    return None


def check_gradients(project, x: np.ndarray, y: np.ndarray, samples_per_block: int = DEFAULT_SAMPLES,
                    rng: np.random.Generator | int | None = 0, progress: Callable[[int, int], None] | None = None,
                    state: dict | None = None, data: str = "the given batch", random_data: bool = False,
                    step: float = STEP, cancelled: Callable[[], bool] | None = None) -> GradCheckReport:
    """Compare backpropagation with central differences on ``samples_per_block`` parameters of every
    block (see the module). ``state``: weights to check at (a ``state_dict``), else the project
    seed's fresh ones. ``progress(done, total)`` after each parameter; deterministic for a given ``rng``
    seed. ``cancelled()`` returning True stops early (the report covers what was done)."""
    from netbuilder.core.network import Network

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    network = Network(project, dtype=np.float64)
    if state is not None:
        network.load_state_dict(state)
    for i, layer in enumerate(layer for layer in _all_layers(network) if isinstance(layer, Dropout)):
        layer.rng = _FixedRng(int(rng.integers(2**31)) + i)
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = np.asarray(y)
    record = _watch_kinks(network)

    # the analytic gradients, and the kink pattern at θ
    record.clear()
    loss0, _ = network.train_step(x, y)
    pattern0 = list(record)
    analytic = {k: np.array(v, dtype=np.float64) for k, v in network.gradients().items()}
    targets = network.targets(y)
    fused = network._fused  # the same loss train_step computes: logits into a fused softmax/sigmoid loss
    layers = network.layers[:-1] if fused else network.layers
    prepared = network._prepare(x)

    def loss() -> float:
        record.clear()
        h = prepared
        for layer in layers:
            h = layer.forward(h, True)
        value, _ = network.loss.value_and_grad(h.reshape(len(h), -1), targets)
        return float(value)

    # what each parameter's entries are compared through: (flat array, index, analytic, label)
    # where each top-level block starts in the layers, its input and the gradient with respect to it
    starts, k = {}, 0
    for stage in network.stages:
        if stage.layers and k < len(layers):
            starts[stage.path] = k
        k += len(stage.layers)
    inputs, deltas = _inputs_and_deltas(network, layers, prepared, targets)
    rests: dict[int, tuple] = {}

    def rest_of_network(i0: int, held: np.ndarray | None = None):
        """The loss from layer ``i0`` on (the layers before do not depend on what is perturbed), and
        its kink pattern at θ; ``held``: that layer's input, to be perturbed, else the one recorded."""
        if held is None and i0 in rests:
            return rests[i0]
        f = _partial_loss(network, layers[i0:], inputs[i0] if held is None else held, targets, record)
        f()
        found = (f, list(record))
        if held is None:
            rests[i0] = found
        return found

    owners = _own_parameters(network)
    plan = []
    top = None
    for stage, depth, own in owners:
        top = stage if depth == 0 else top
        picks = [(own[n].reshape(-1), j, float(analytic[n].reshape(-1)[j]), _label(n, own[n].shape, j), False)
                 for n, j in _pick(own, samples_per_block, rng)]
        evaluate, pattern = rest_of_network(starts[top.path]) if top.path in starts else (loss, pattern0)
        plan.append((stage, depth, own, picks, evaluate, pattern))
    # a top-level block without parameters (pooling, flatten, activation, dropout) and a group: the
    # gradient with respect to its input, δ flowing out of its backward, against perturbing that input
    for stage, depth, own, *_ in list(plan):
        if depth or stage.path not in starts or (own and not KINDS[stage.info.kind].inner_stages(stage)):
            continue
        i0 = starts[stage.path]
        held = np.array(inputs[i0], dtype=np.float64, order="C", copy=True)
        partial, held_pattern = rest_of_network(i0, held)
        flat, delta = held.reshape(-1), np.asarray(deltas[i0]).reshape(-1)
        chosen = np.sort(rng.choice(flat.size, size=min(flat.size, samples_per_block), replace=False))
        inputs_picks = [(flat, int(j), float(delta[j]), _label(f"{stage.path} input", held.shape, j), True)
                        for j in chosen]
        plan.append((stage, depth, own, inputs_picks, partial, held_pattern))

    total = sum(len(p[3]) for p in plan)
    results: dict[str, BlockResult] = {}
    done = 0
    if progress is not None:
        progress(0, total)
    for stage, depth, own, picks, evaluate, pattern in plan:
        res = results.get(stage.path)
        if res is None:
            res = results[stage.path] = BlockResult(stage.path, stage.info.kind, depth,
                                                    sum(v.size for v in own.values()))
        for flat, j, a, label, is_input in picks:
            if cancelled is not None and cancelled():
                break
            numeric = _derivative(flat, j, evaluate, record, pattern, step)
            done += 1
            if numeric is None:
                res.skipped += 1
            else:
                err = abs(a - numeric) / max(abs(a) + abs(numeric), FLOOR)
                if not math.isfinite(err):
                    err = math.inf
                if is_input:
                    res.inputs += 1
                else:
                    res.checked += 1
                if res.max_error is None or err > res.max_error:
                    res.max_error, res.worst = err, label
            if progress is not None:
                progress(done, total)

    # a group's row covers its inner blocks too: its parameters, counts and largest error
    blocks = [results[stage.path] for stage, *_ in owners]
    for group in blocks:
        inner = [b for b in blocks if b.path.startswith(group.path + ".")]
        for b in inner:
            group.parameters += b.parameters
            group.checked += b.checked
            group.skipped += b.skipped
            if b.max_error is not None and (group.max_error is None or b.max_error > group.max_error):
                group.max_error, group.worst = b.max_error, b.worst
    notes = [] if math.isfinite(loss0) else [f"the loss on this batch is {loss0}: nothing can be compared"]
    return GradCheckReport(blocks, len(x), data, random_data, "trained" if state is not None else "fresh", step,
                           TOLERANCE, notes)


def check_project(project, samples_per_block: int = DEFAULT_SAMPLES, batch: int = DEFAULT_BATCH, base_dir=None,
                  seed: int = 0, state: dict | None = None, progress=None, cancelled=None) -> GradCheckReport:
    """``check_gradients`` on the project's own data (its first ``batch`` training images, or random inputs)."""
    x, y, data, random_data = batch_from_project(project, batch, base_dir, seed)
    return check_gradients(project, x, y, samples_per_block, seed, progress, state, data, random_data,
                           cancelled=cancelled)
