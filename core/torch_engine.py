"""The torch engine: the same training run as ``Trainer``'s, with the arithmetic done by PyTorch.

``TorchTrainer`` is a ``Trainer``: the run loop (data order from the seed, batches, events,
history, pause/stop/resume, live learning rate, divergence messages, checkpoints between epochs)
is the numpy engine's own. Only the step, the validation forward pass and where the weights live
during a run differ. The torch model is generated from each block's PyTorch lowering (the very
source the PyTorch export writes, through ``torch_bridge.torch_model``), starts from the numpy
network's weights (so the same seed gives the same initial weights) and, at every epoch's end
and at the run's end, its parameters, buffers and optimiser state are copied back into the
numpy network and optimiser under the same names: weights files, checkpoints, exports and
probes then work as with the numpy engine.

torch is imported only when this engine is chosen (``make_trainer(..., engine="torch")``).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from netbuilder.core.errors import TrainingError
from netbuilder.core.layers import Dropout
from netbuilder.core.layers.batchnorm import BatchNorm
from netbuilder.core.trainer import Trainer, _Diverged, make_optimizer_like

ENGINES = ("numpy", "torch")
INSTALL_HINT = "the torch engine needs PyTorch: pip install 'netbuilder[torch]'"
DEVICES_HELP = "cpu, cuda, cuda:N, mps or auto"


class TorchMissingError(ImportError):
    """torch cannot be imported; the message says how to install it."""


def import_torch():
    """The torch module, or TorchMissingError with the install hint."""
    try:
        import torch
    except ImportError as exc:
        raise TorchMissingError(INSTALL_HINT) from exc
    return torch


def torch_available() -> bool:
    try:
        import_torch()
    except TorchMissingError:
        return False
    return True


def torch_installed() -> bool:
    """Whether torch can be found, without importing it (importing takes a second or two)."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or half-removed install
        return False


def torch_devices() -> list[tuple[str, str]]:
    """(device, description) of every device torch can train on here, the CPU first."""
    torch = import_torch()
    devices = [("cpu", "cpu")]
    if torch.cuda.is_available():
        devices += [(f"cuda:{i}", describe_device(f"cuda:{i}")) for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(("mps", "mps (Apple GPU)"))
    return devices


def resolve_device(name: str | None = "auto") -> str:
    """The torch device ``name`` stands for ("auto": CUDA, else MPS, else the CPU), checked to exist.

    Raises TrainingError naming the problem for an unknown or absent device.
    """
    torch = import_torch()
    text = "auto" if name is None else str(name).strip().lower()
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if text == "auto":
        return "cuda:0" if cuda else "mps" if mps else "cpu"
    if text == "cpu":
        return "cpu"
    if text == "mps":
        if not mps:
            raise TrainingError(f"device mps is not available: torch {torch.__version__} sees no Apple GPU")
        return "mps"
    if text == "cuda" or text.startswith("cuda:"):
        index = text.partition(":")[2] or "0"
        if not index.isdigit():
            raise TrainingError(f"unknown device {name!r}; choose {DEVICES_HELP}")
        if not cuda:
            raise TrainingError(f"device {name} is not available: torch {torch.__version__} sees no CUDA GPU")
        count = torch.cuda.device_count()
        if int(index) >= count:
            raise TrainingError(f"device {name} does not exist: torch sees {count} CUDA GPU{'s' if count != 1 else ''} "
                                f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
        return f"cuda:{int(index)}"
    raise TrainingError(f"unknown device {name!r}; choose {DEVICES_HELP}")


def describe_device(device: str) -> str:
    """``device`` for people: "cpu", "cuda:0 (NVIDIA H200)", "mps"."""
    if device.startswith("cuda"):
        torch = import_torch()
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def make_trainer(project, dataset, engine: str = "numpy", device: str | None = None, checkpoint=None, **options):
    """A trainer of ``engine`` ("numpy" or "torch"; ``device`` for torch only), continuing
    ``checkpoint`` (a Checkpoint or a path) when given.

    Raises TorchMissingError when torch is chosen and not installed, TrainingError for a device
    that is not there (or one asked of the numpy engine).
    """
    if engine not in ENGINES:
        raise TrainingError(f"unknown engine {engine!r}; choose {' or '.join(ENGINES)}")
    if engine == "numpy":
        if device not in (None, "cpu"):
            raise TrainingError(f"the numpy engine runs on the CPU only; choose the torch engine for device {device}")
        cls = Trainer
    else:
        cls = TorchTrainer
        options["device"] = device if device is not None else "auto"
    if checkpoint is not None:
        return cls.from_checkpoint(checkpoint, dataset, project=project, **options)
    return cls(project, dataset, **options)


class TorchTrainer(Trainer):
    """``Trainer`` with the step and validation done by PyTorch on ``device`` (see ``resolve_device``).

    Matches the numpy engine: the same initial weights, data order (the same generator shuffles),
    input normalisation (buffers inside the model, as in the PyTorch export), loss and reduction,
    optimiser update (torch.optim's, which the numpy optimisers copy) and weight decay. Dropout
    draws from torch's generator, seeded with the project's seed when the network has dropout, so
    runs with dropout are repeatable on one device but differ from the numpy engine's.
    """

    engine = "torch"

    def __init__(self, project, dataset, network=None, dtype=np.float32, device: str | None = "auto"):
        self._torch = torch = import_torch()
        self.device = resolve_device(device)
        self._model = None
        self._topt = None
        self._live = False  # a run is going on: the weights are the torch model's
        super().__init__(project, dataset, network=network, dtype=dtype)
        if self.device.startswith("cuda"):
            _ieee_float32(torch)  # TF32 convolutions (torch's default for cuDNN) are ~1e-3 off
        if any(isinstance(layer, Dropout) for stage in self.network.walk_stages() for layer in stage.layers):
            torch.manual_seed(self.settings.seed)

    @property
    def device_description(self) -> str:
        return describe_device(self.device)

    # --- control (any thread) ----------------------------------------------------------------
    def weights(self) -> dict[str, np.ndarray]:
        with self._exclusive():
            if self._live:
                return self._model_state()
            return self.network.state_dict()

    def probe(self, x: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
        with self._exclusive():
            if self._live:  # the numpy network shows the weights of the batch just done
                self.network.load_state_dict(self._model_state())
        return super().probe(x)

    # --- the engine hooks ----------------------------------------------------------------------
    def _run_context(self):
        return contextlib.nullcontext()  # torch manages its own threads

    def _start_engine(self) -> None:
        """The torch model and optimiser from the numpy network and optimiser as they are now
        (a new run after another, or after ``restore``, continues from them)."""
        from netbuilder.core.torch_bridge import torch_model

        torch, net = self._torch, self.network
        self._acquire()
        try:
            model = torch_model(net, final_activation=not net._fused)
            dtype = _torch_dtype(torch, net.dtype)
            model = model.to(device=self.device, dtype=dtype)
            # torch_model loads float32 copies; load the numpy arrays themselves (float64 stays exact)
            model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in net.state_dict().items()})
            with torch.no_grad():  # the network's own normalisation constants (float64 ones for a float64 network)
                for buffer, value in (("input_mean", net._shift), ("input_scale", net._scale)):
                    if value is not None and hasattr(model, buffer):
                        target = getattr(model, buffer)
                        target.copy_(torch.from_numpy(np.ascontiguousarray(value)).reshape(target.shape))
            params = dict(model.named_parameters())
            if set(params) != set(net.parameters()):
                raise TrainingError("the torch model's parameters are not the network's: "
                                    f"{sorted(set(params) ^ set(net.parameters()))}")
            self._model, self._params = model.train(), params
            # BatchNorm blocks that see one value per channel in a batch of one sample (after a
            # dense block): the numpy engine normalises such a batch with the running statistics
            # and leaves them as they are (torch would raise); eval mode for that step does the same.
            self._single_value_norms = [
                model.get_submodule(stage.path) for stage in net.walk_stages()
                if any(isinstance(layer, BatchNorm) for layer in stage.layers)
                and int(np.prod(stage.info.input_shape[1:])) == 1]
            self._topt = self._torch_optimizer()
            self._load_optimizer_state()
            self._live = True
        finally:
            self._lock.release()

    def _sync_engine(self, final: bool = False) -> None:
        if self._model is None or not self._live:
            return
        self._acquire()
        try:
            self.network.load_state_dict(self._model_state())
            self._store_optimizer_state()
            if final:
                self._live = False
        finally:
            self._lock.release()

    def _snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self._model.state_dict().items()}

    def gradient_norms(self) -> dict[str, float]:
        """The last step's gradient norms, computed on the device and fetched at once."""
        if self._model is None or not self._live:
            return super().gradient_norms()
        torch = self._torch
        names = [n for n, p in self._params.items() if p.grad is not None]
        if not names:
            return {}
        norms = torch.stack([self._params[n].grad.detach().norm() for n in names]).double().cpu().tolist()
        return dict(zip(names, norms))

    def _step(self, xb, yb, epoch: int, batch: int, snapshot) -> tuple[float, np.ndarray]:
        torch, model, topt = self._torch, self._model, self._topt
        self._acquire()
        try:
            x = torch.from_numpy(xb).to(self.device, non_blocking=True)
            y = torch.from_numpy(yb).to(self.device, non_blocking=True)
            lr = self.optimizer.lr  # one rate for the whole step, even if another thread changes it
            for group in topt.param_groups:
                group["lr"] = lr
            topt.zero_grad(set_to_none=True)
            model.train()
            if len(xb) == 1:
                for module in self._single_value_norms:
                    module.eval()
            pred = model(x).reshape(len(xb), -1)
            loss = self._loss(pred, y)
            loss.backward()
            finite = torch.stack([torch.isfinite(loss)] + [torch.isfinite(p.grad).all()
                                                           for p in self._params.values() if p.grad is not None])
            value, ok = float(loss.item()), bool(finite.all().item())
            if ok:
                topt.step()
                self.optimizer.steps += 1
                with torch.no_grad():
                    outputs = self._outputs(pred.detach())
                return value, outputs.cpu().numpy()
            if not math.isfinite(value):
                what = f"the loss became {'NaN' if math.isnan(value) else 'infinite'}"
            else:
                what = "the gradients became NaN or infinite"
            kept = "the weights from before this batch are kept"
            if not all(bool(torch.isfinite(p).all()) for p in self._params.values()):
                model.load_state_dict(snapshot)
                self.optimizer = make_optimizer_like(self.optimizer, self.settings)
                self._topt = self._torch_optimizer()
                kept = f"the weights were restored from the start of epoch {epoch}"
        finally:
            self._lock.release()
        raise _Diverged(
            f"training diverged at epoch {epoch}, batch {batch}: {what} with learning rate "
            f"{self.optimizer.lr:g}; {kept}. Try a lower learning rate.")

    def _evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        torch, model = self._torch, self._model
        model.eval()
        with torch.no_grad():
            xt = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            pred = model(xt).reshape(len(x), -1)
            loss = self._loss(pred, torch.from_numpy(np.ascontiguousarray(y)).to(self.device))
            outputs = self._outputs(pred)
            return float(loss.item()), outputs.cpu().numpy()

    # --- the arithmetic ------------------------------------------------------------------------
    def _loss(self, pred, labels):
        """The project's loss of ``pred`` (logits when the loss is fused with the last activation),
        reduced as ``core/losses.py`` does: summed over outputs, averaged over the batch."""
        F = self._torch.nn.functional
        kind, n, k = self.network.loss.name, pred.shape[0], pred.shape[1]
        if k == 1:  # one output: the label itself is the target (Network.targets)
            target = labels.to(pred.dtype).reshape(-1, 1)
        elif kind != "cross_entropy":
            target = F.one_hot(labels, k).to(pred.dtype)
        if kind == "cross_entropy":
            if k == 1:
                return -(target * F.log_softmax(pred, dim=1)).sum() / n
            return F.cross_entropy(pred, labels)
        if kind == "binary_cross_entropy":
            return F.binary_cross_entropy_with_logits(pred, target, reduction="sum") / n
        if kind == "squared_error":
            return 0.5 * ((pred - target) ** 2).sum() / n
        raise TrainingError(f"the torch engine does not know the loss {kind!r}")

    def _outputs(self, pred):
        """The network's outputs (probabilities) from ``pred``: the fused activation applied."""
        if not self.network._fused:
            return pred
        fused = self.network.loss.fused_activation
        if fused == "softmax":
            return self._torch.softmax(pred, dim=1)
        if fused == "sigmoid":
            return self._torch.sigmoid(pred)
        raise TrainingError(f"the torch engine does not know the activation {fused!r}")

    def _model_state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self._model.state_dict().items()}

    def _torch_optimizer(self):
        """torch.optim's optimiser of the project's kind: the update rules core/optimizers.py copies."""
        torch, opt, kind = self._torch, self.optimizer, self.settings.optimizer
        params = list(self._params.values())
        if kind == "adam":
            return torch.optim.Adam(params, lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps,
                                    weight_decay=opt.weight_decay)
        if kind == "sgd" or (kind in ("momentum", "nesterov") and opt.momentum == 0):  # the same steps
            return torch.optim.SGD(params, lr=opt.lr, weight_decay=opt.weight_decay)
        if kind in ("momentum", "nesterov"):
            return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov,
                                   weight_decay=opt.weight_decay)
        raise TrainingError(f"the torch engine does not know the optimizer {kind!r}")

    def _load_optimizer_state(self) -> None:
        """The numpy optimiser's moment buffers and step count into the torch optimiser."""
        torch, state = self._torch, self.optimizer.state
        for name, p in self._params.items():
            slots = state.get(name)
            if not slots:
                continue
            entry = {slot: torch.from_numpy(np.array(buf, copy=True)).to(device=p.device, dtype=p.dtype)
                     for slot, buf in slots.items()}
            if isinstance(self._topt, torch.optim.Adam):
                entry["step"] = torch.tensor(float(self.optimizer.steps))
            elif "momentum_buffer" not in entry or not self._topt.defaults.get("momentum"):
                continue
            self._topt.state[p] = entry

    def _store_optimizer_state(self) -> None:
        """The torch optimiser's buffers into the numpy optimiser (its ``steps`` counts along)."""
        slots = self.optimizer.slots
        state: dict[str, dict[str, np.ndarray]] = {}
        for name, p in self._params.items():
            own = self._topt.state.get(p) or {}
            kept = {slot: own[slot].detach().cpu().numpy().copy() for slot in slots
                    if own.get(slot) is not None}
            if kept:
                state[name] = kept
        self.optimizer.state = state


def _torch_dtype(torch, dtype):
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]


def _ieee_float32(torch) -> None:
    """Full float32 in cuDNN convolutions and matrix products (no TF32), as the numpy engine computes."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    matmul = torch.backends.cuda.matmul
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9 (mixing the APIs is an error)
        conv.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
    if hasattr(matmul, "fp32_precision"):
        matmul.fp32_precision = "ieee"
    else:
        matmul.allow_tf32 = False
