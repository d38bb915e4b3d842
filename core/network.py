"""A network built from a project: the layers of each block, run forward and backward.

Data flows one way: project -> inference (shapes, resolved geometry) -> Network. Parameters
are named ``<block name>.weight`` / ``<block name>.bias``, the names every export uses.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from netbuilder.core import class_weights
from netbuilder.core.blocks import KINDS
from netbuilder.core.datasets.normalize import check_normalization
from netbuilder.core.inference import BlockInfo, validate
from netbuilder.core.layers import Activation, Layer
from netbuilder.core.layers.fold import InferenceFold
from netbuilder.core.layers.groups import forward_observed
from netbuilder.core.layers.parallel import holds_blas_single_threaded
from netbuilder.core.losses import make_loss
from netbuilder.core.project import Project


def _quiet_overflow(method):
    """Run ``method`` without numpy's overflow and invalid-value warnings: a network that diverged
    gives infinite or NaN outputs, which its callers check for and report in their own words."""
    @functools.wraps(method)
    def quiet(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return method(*args, **kwargs)
    return quiet


@dataclass
class Stage:
    """The layers one block became, in order, and where its parameters live.

    ``path`` is the block's full name ("conv1", or "res1.conv1" inside a group): the prefix of its
    parameters' names. ``named`` lists every layer holding parameters or buffers, with its prefix.
    """

    info: BlockInfo
    layers: list[Layer]
    param_layer: Layer | None = None
    path: str = ""
    named: list = field(default_factory=list)


def build_stage(info: BlockInfo, rng: np.random.Generator, dtype, parent: str = "") -> Stage:
    """The engine layers of one block, as its kind declares them; ``parent`` is its group's path."""
    spec = KINDS.get(info.kind)
    if spec is None:  # inference rejects these first
        raise ValueError(f"block {info.index + 1}: unknown kind {info.kind!r}")
    path = f"{parent}.{info.name}" if parent else info.name
    layers, param_layer = spec.layers(info, rng, dtype, path)
    return Stage(info, layers, param_layer, path, spec.named_layers(path, layers))


class Network:
    """The trainable network of a project.

    ``forward`` returns the last block's output (class probabilities after a softmax). With a
    loss whose ``fused_activation`` matches the final activation, training feeds the loss the
    logits instead, for numerical stability (softmax + cross-entropy as one step).
    """

    def __init__(self, project: Project, rng: np.random.Generator | None = None, dtype=np.float32):
        self.project = project
        self.inference = validate(project)
        self.dtype = np.dtype(dtype)
        rng = rng if rng is not None else np.random.default_rng(project.training.seed)
        self.stages = [build_stage(info, rng, self.dtype) for info in self.inference.blocks]
        self.layers: list[Layer] = [layer for s in self.stages for layer in s.layers]
        # A list of class weights is the project's; "balanced" is set by the trainer once it knows the split.
        self.loss = make_loss(project.training.loss, class_weights.fixed(project.training.class_weights))
        last = self.layers[-1]
        self._fused = (
            self.loss.fused_activation is not None
            and isinstance(last, Activation)
            and last.name == self.loss.fused_activation
        )
        self.output_features = int(np.prod(self.inference.output_shape))
        self.input_grad: np.ndarray | None = None
        # Layers before the first one with weights have nothing to learn: backward may stop there.
        self._first_weighted = next((layer for layer in self.layers if hasattr(layer, "needs_input_grad")), None)
        self._shift = self._scale = None
        self._fold = InferenceFold()  # predict and evaluate: each batchnorm merged into the layer before
        self.set_normalization(project.dataset.get("normalization") if isinstance(project.dataset, dict) else None)

    # --- input normalisation -----------------------------------------------------------------
    def set_normalization(self, stats: dict | None) -> None:
        """Apply ``(x - mean) / std`` per channel to every input from now on (None: raw input).

        ``stats`` is the project's ``dataset["normalization"]``; the network, not the data,
        applies it, so training, probing, prediction and export verification all see the same.
        """
        self._stats = dict(stats) if stats else None
        if not stats:
            self._shift = self._scale = None
            return
        mean, std = check_normalization(stats, channels=self.inference.input_shape[0])
        shape = (-1,) + (1,) * (len(self.inference.input_shape) - 1)
        self._shift = mean.reshape(shape).astype(self.dtype)
        self._scale = (1.0 / std).reshape(shape).astype(self.dtype)

    @property
    def normalization(self) -> dict | None:
        """The per-channel statistics applied to inputs, as stored in the project, or None."""
        return self._stats

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        return x if self._shift is None else (x - self._shift) * self._scale

    def walk_stages(self) -> list[Stage]:
        """Every stage, groups' inner ones too, in order (a group before its inner blocks)."""
        out: list[Stage] = []

        def visit(stages) -> None:
            for stage in stages:
                out.append(stage)
                visit(KINDS[stage.info.kind].inner_stages(stage))
        visit(self.stages)
        return out

    # --- parameters -------------------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays under their stable names (``conv1.weight``...)."""
        return {f"{prefix}.{k}": v for s in self.stages for prefix, layer in s.named for k, v in layer.params.items()}

    def gradients(self) -> dict[str, np.ndarray]:
        """Gradients of the last ``train_step``, same names and shapes as ``parameters()``."""
        return {f"{prefix}.{k}": v for s in self.stages for prefix, layer in s.named for k, v in layer.grads.items()}

    def buffers(self) -> dict[str, np.ndarray]:
        """The live arrays saved with the parameters but not trained (``bn1.running_mean``...)."""
        return {f"{prefix}.{k}": v for s in self.stages for prefix, layer in s.named for k, v in layer.buffers.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters and the buffers: what weights files, checkpoints and exports hold."""
        return {k: v.copy() for k, v in {**self.parameters(), **self.buffers()}.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` into the parameters and buffers; every mismatch is named, nothing changes on error."""
        params = {**self.parameters(), **self.buffers()}
        buffers = self.buffers()
        problems = []
        for name, p in params.items():
            if name not in state:
                what = "buffer" if name in buffers else "parameter"
                problems.append(f"missing {what} {name} {_shape(p.shape)}")
            elif tuple(np.shape(state[name])) != p.shape:
                problems.append(f"{name}: the file has {_shape(np.shape(state[name]))}, "
                                f"the network needs {_shape(p.shape)}")
        problems += [f"unexpected parameter {name}" for name in state if name not in params]
        if problems:
            raise ValueError("weights do not match the network: " + "; ".join(problems))
        for name, p in params.items():
            p[...] = np.asarray(state[name], dtype=p.dtype)

    @property
    def num_params(self) -> int:
        return sum(p.size for p in self.parameters().values())

    # --- running ----------------------------------------------------------------------------
    # The public calls hold BLAS to one thread while they run: the layers split the work themselves.
    @holds_blas_single_threaded
    @_quiet_overflow
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        x = self._prepare(x)
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    @holds_blas_single_threaded
    @_quiet_overflow
    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Outputs for a whole array, in batches, without touching training state (a batchnorm after a
        convolution or dense block is merged into it: the same outputs up to float rounding)."""
        outs = [self._fold.run(self.layers, self._prepare(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, self.output_features), self.dtype)

    @holds_blas_single_threaded
    @_quiet_overflow
    def forward_blocks(self, x: np.ndarray) -> list[tuple[BlockInfo, np.ndarray]]:
        """Every block's output for ``x`` (inference mode, nothing cached): what the probe shows."""
        x = self._prepare(x)
        out = []
        for stage in self.stages:
            for layer in stage.layers:
                x = layer.forward(x, False)
            out.append((stage.info, x))
        return out

    @holds_blas_single_threaded
    @_quiet_overflow
    def forward_stages(self, x: np.ndarray, visit=None) -> list[tuple[Stage, np.ndarray]]:
        """Every block's output for ``x``, the blocks inside groups too (inference mode, nothing cached).

        ``[(stage, output), ...]`` in the order the outputs are made: a group's inner blocks (their
        ``stage.path`` is "res1.conv1", "inc1.path2.conv1"), path by path, then the group's own
        output. After, not before: the group's output (the sum, the merge) is made from its inner
        blocks', so a view reads top to bottom as the data goes, and the last entry is still the
        network's output (what the probe's prediction comes from). With ``visit``, each pair goes to
        ``visit(stage, output)`` as soon as it is made and none is kept (a big batch's outputs need
        not all be held at once); the list is empty then. Training never comes here: only probes
        pay for the recording.
        """
        last_layers = {id(stage.layers[-1]): stage for stage in self.walk_stages() if stage.layers}
        out: list[tuple[Stage, np.ndarray]] = []
        keep = visit if visit is not None else (lambda stage, y: out.append((stage, y)))

        def observe(layer: Layer, y: np.ndarray) -> None:
            stage = last_layers.get(id(layer))
            if stage is not None:
                keep(stage, y)
        forward_observed(self.layers, self._prepare(x), observe)
        return out

    def targets(self, labels: np.ndarray) -> np.ndarray:
        """Loss targets for integer labels: one-hot rows, or the label itself for one binary output."""
        labels = np.asarray(labels)
        if self.output_features == 1:
            return labels.astype(self.dtype).reshape(-1, 1)
        t = np.zeros((len(labels), self.output_features), self.dtype)
        t[np.arange(len(labels)), labels] = 1
        return t

    def classify(self, outputs: np.ndarray) -> np.ndarray:
        """Predicted class per row of outputs (threshold 0.5 for one binary output)."""
        if outputs.shape[1] == 1:
            return (outputs[:, 0] >= 0.5).astype(np.int64)
        return outputs.argmax(axis=1)

    @holds_blas_single_threaded
    @_quiet_overflow
    def evaluate(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss and outputs in inference mode (no dropout, nothing cached, batchnorms merged as in
        ``predict``): validation's step."""
        x = self._fold.run(self.layers[:-1] if self._fused else self.layers, self._prepare(x))
        pred = x.reshape(len(x), -1)
        loss, _ = self.loss.value_and_grad(pred, self.targets(labels))
        outputs = self.layers[-1].forward(pred, False) if self._fused else pred
        return float(loss), outputs

    @holds_blas_single_threaded
    def train_step(self, x: np.ndarray, labels: np.ndarray, input_grad: bool = False) -> tuple[float, np.ndarray]:
        """Forward in training mode, loss, backward: fills every layer's grads.

        Returns the batch loss and the network's outputs (probabilities) for accuracy. The
        gradient with respect to the input image is computed only with ``input_grad=True``
        (then in ``self.input_grad``): training never needs it, and it is a fifth of a
        LeNet-5 step.
        """
        x = self._prepare(x)
        layers = self.layers[:-1] if self._fused else self.layers
        if self._first_weighted is not None:
            self._first_weighted.needs_input_grad = input_grad
        for layer in layers:
            x = layer.forward(x, True)
        pred = x.reshape(len(x), -1)
        loss, grad = self.loss.value_and_grad(pred, self.targets(labels))
        outputs = self.layers[-1].forward(pred, False) if self._fused else pred
        grad = grad.reshape(x.shape)
        for layer in reversed(layers):
            grad = layer.backward(grad)
            if grad is None:  # the first weighted layer skipped its input gradient
                break
        # d loss / d raw input (through the normalisation): the parity tests check it
        self.input_grad = None if grad is None or not input_grad else (
            grad if self._scale is None else grad * self._scale)
        return float(loss), outputs


def _shape(shape) -> str:
    return " x ".join(str(d) for d in shape) if len(shape) else "scalar"
