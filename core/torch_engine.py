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
from netbuilder.core.torch_devices import describe_device, import_torch, resolve_device
from netbuilder.core.torch_losses import torch_loss
from netbuilder.core.trainer import Trainer, _Diverged, make_optimizer_like

ENGINES = ("numpy", "torch")
AMP_MODES = ("bf16", "fp16")  # TorchTrainer(amp=...): autocast to bfloat16 or float16 (with a GradScaler)
GPU_OPTIONS = ("amp", "channels_last", "compile")  # the torch engine's speed options, each off by default


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
        asked = [name for name in GPU_OPTIONS if options.get(name)]
        if asked:
            raise TrainingError(f"{', '.join(asked)}: only the torch engine has "
                                f"{'these options' if len(asked) > 1 else 'this option'}")
        options = {k: v for k, v in options.items() if k not in GPU_OPTIONS}
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

    Speed options, each off by default: ``amp`` "bf16" or "fp16" runs the forward pass under
    ``torch.autocast`` on the device (fp16 with a ``GradScaler``; the weights, the optimiser and
    the loss stay float32, so the weights come home in float32 as without it); ``channels_last``
    puts the model's convolution weights and each batch in channels-last memory format (meant for
    CUDA's tensor cores; on the CPU it is allowed and computes the same); ``compile`` runs the model
    through ``torch.compile``, and a compilation that fails ends the run with a TrainingError
    saying why (on the CPU inductor needs a C++ compiler), as do compiled gradients that are off
    the plain model's at the first step of a batch size.
    """

    engine = "torch"

    def __init__(self, project, dataset, network=None, dtype=np.float32, device: str | None = "auto",
                 amp: str | None = None, channels_last: bool = False, compile: bool = False):
        self._torch = torch = import_torch()
        self.device = resolve_device(device)
        if amp is not None and amp not in AMP_MODES:
            raise TrainingError(f"unknown mixed precision {amp!r}; choose {' or '.join(AMP_MODES)}")
        if amp is not None and np.dtype(dtype) != np.float32:
            raise TrainingError(f"mixed precision ({amp}) trains a float32 network, not {np.dtype(dtype)}")
        if compile and not callable(getattr(torch, "compile", None)):
            raise TrainingError(f"torch.compile is not in torch {torch.__version__}; train without compile")
        self.amp, self.channels_last, self.compile = amp, bool(channels_last), bool(compile)
        self._forward = None  # the model, or its torch.compile'd wrapper (which shares its parameters)
        self._scaler = None  # fp16's GradScaler
        self._compile_verified: set[int] = set()  # batch sizes whose compiled gradients were checked
        self._model = None
        self._topt = None
        self._live = False  # a run is going on: the weights are the torch model's
        self._weights = None  # (the loss's class weights, that array as a tensor on the device)
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
        with self._net_lock.exclusive():
            if self._live:
                return self._model_state()
            return self.network.state_dict()

    def probe(self, x: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
        with self._net_lock.exclusive():
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
        self._net_lock.acquire()
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
            if self.channels_last:  # the 4-d weights; load_state_dict copies keep the layout
                model = model.to(memory_format=torch.channels_last)
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
            self._forward = self._compiled(model) if self.compile else model
            if self.amp == "fp16" and self._scaler is None:  # kept across runs, as its scale is
                self._scaler = _grad_scaler(torch, self.device)
            self._live = True
        finally:
            self._net_lock.release()

    def _sync_engine(self, final: bool = False) -> None:
        if self._model is None or not self._live:
            return
        self._net_lock.acquire()
        try:
            self.network.load_state_dict(self._model_state())
            self._store_optimizer_state()
            if final:
                self._live = False
        finally:
            self._net_lock.release()

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
        self._net_lock.acquire()
        try:
            x = self._input(torch.from_numpy(xb))
            y = torch.from_numpy(yb).to(self.device, non_blocking=True)
            lr = self.optimizer.lr  # one rate for the whole step, even if another thread changes it
            for group in topt.param_groups:
                group["lr"] = lr
            topt.zero_grad(set_to_none=True)
            model.train()
            if len(xb) == 1:
                for module in self._single_value_norms:
                    module.eval()
            scaler = self._scaler
            if self.compile and len(xb) not in self._compile_verified:
                self._verify_compiled(x, y)
            with self._compiling():
                with self._autocast():
                    pred = self._forward(x).reshape(len(xb), -1)
                pred = pred.float() if self.amp else pred  # the loss in float32
                loss = self._loss(pred, y)
                (scaler.scale(loss) if scaler is not None else loss).backward()
            if scaler is not None:  # fp16: an overflowing gradient is the scaler's to skip, not divergence
                scaler.unscale_(topt)  # the true gradients, for the gradient view too
                value = float(loss.item())
                if math.isfinite(value):
                    scale = scaler.get_scale()
                    scaler.step(topt)
                    scaler.update()
                    if scaler.get_scale() >= scale:  # the step was taken (a skipped one lowers the scale)
                        self.optimizer.steps += 1
                    with torch.no_grad():
                        outputs = self._outputs(pred.detach())
                    return value, outputs.cpu().numpy()
                scaler.update()  # its record of this step cleared, for a run after this one
                ok = False
            else:
                finite = torch.stack([torch.isfinite(loss)] + [torch.isfinite(p.grad).all()
                                                               for p in self._params.values() if p.grad is not None])
                value, ok = float(loss.item()), bool(finite.all().item())
            if ok:
                topt.step()
                self.optimizer.steps += 1
                with torch.no_grad():
                    outputs = self._outputs(pred.detach())
                return value, outputs.cpu().numpy()
            diverged = self._divergence(value, epoch, batch, snapshot)
        finally:
            self._net_lock.release()
        raise diverged

    def _divergence(self, value: float, epoch: int, batch: int, snapshot) -> _Diverged:
        """A step whose loss or gradients were not finite (the step not taken): put back the
        epoch's starting weights if the model's are no longer finite, and say what happened."""
        torch = self._torch
        if not math.isfinite(value):
            what = f"the loss became {'NaN' if math.isnan(value) else 'infinite'}"
        else:
            what = "the gradients became NaN or infinite"
        kept = "the weights from before this batch are kept"
        if not all(bool(torch.isfinite(p).all()) for p in self._params.values()):
            self._model.load_state_dict(snapshot)
            self.optimizer = make_optimizer_like(self.optimizer, self.settings)
            self._topt = self._torch_optimizer()
            kept = f"the weights were restored from the start of epoch {epoch}"
        return _Diverged(f"training diverged at epoch {epoch}, batch {batch}: {what} with learning rate "
                         f"{self.optimizer.lr:g}; {kept}. Try a lower learning rate.")

    def _evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        torch, model = self._torch, self._model
        model.eval()
        with torch.no_grad(), self._compiling():
            xt = self._input(torch.from_numpy(np.ascontiguousarray(x)))
            with self._autocast():
                pred = self._forward(xt).reshape(len(x), -1)
            pred = pred.float() if self.amp else pred
            loss = self._loss(pred, torch.from_numpy(np.ascontiguousarray(y)).to(self.device))
            outputs = self._outputs(pred)
            return float(loss.item()), outputs.cpu().numpy()

    # --- the speed options -----------------------------------------------------------------
    def _input(self, x):
        """A batch on the device, in channels-last layout when asked."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=self._torch.channels_last)
        return x

    def _autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        dtype = {"bf16": self._torch.bfloat16, "fp16": self._torch.float16}[self.amp]
        return self._torch.autocast(device_type=self.device.partition(":")[0], dtype=dtype)

    def _compiled(self, model):
        try:
            return self._torch.compile(model)
        except Exception as exc:
            raise self._compile_error(exc) from exc

    @contextlib.contextmanager
    def _compiling(self):
        """torch.compile's failures (it compiles at the first call, and again for a new shape or
        mode) as a TrainingError that says why, in one line."""
        if not self.compile:
            yield
            return
        try:
            yield
        except TrainingError:
            raise
        except Exception as exc:
            if not _compile_failure(exc):
                raise
            raise self._compile_error(exc) from exc

    def _verify_compiled(self, x, y) -> None:
        """At the first step of each batch size (torch.compile compiles again for a new shape): the
        compiled model's gradients against the plain model's on the same batch. torch 2.13.0's
        inductor on the CPU was seen to give LeNet-5's convolutions zero gradients (through ReLU
        and max-pooling) at batch 16 and not at 64. Buffers (BatchNorm's running statistics) are
        put back after; a network with dropout is not checked (the two draw different masks)."""
        torch, model = self._torch, self._model
        self._compile_verified.add(len(x))
        if any(isinstance(layer, Dropout) for stage in self.network.walk_stages() for layer in stage.layers):
            return
        buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
        grads = []
        for forward in (model, self._forward):
            self._topt.zero_grad(set_to_none=True)
            with self._compiling():
                with self._autocast():
                    pred = forward(x).reshape(len(x), -1)
                self._loss(pred.float(), y).backward()
            grads.append({n: p.grad.detach().float().clone() for n, p in self._params.items() if p.grad is not None})
        self._topt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        plain, compiled = grads
        tol = 0.1 if self.amp else 1e-3  # relative L2 gap of one parameter's gradient
        for name, g in plain.items():
            if not bool(torch.isfinite(g).all()):
                self._compile_verified.discard(len(x))  # check at the next step instead
                return
            c = compiled.get(name, torch.zeros_like(g))
            gap, size = float((c - g).norm()), float(g.norm())
            if not gap <= tol * size + 1e-12:
                raise TrainingError(
                    f"torch.compile gives wrong gradients on {self.device} with torch {torch.__version__}: "
                    f"{name}'s is {gap / max(size, 1e-30):.2g} (relative) from the uncompiled model's; "
                    "train without compile")

    def _compile_error(self, exc: BaseException) -> TrainingError:
        why = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        why = f"{type(exc).__name__}: {why}" if why else type(exc).__name__
        if len(why) > 300:
            why = why[:297] + "..."
        return TrainingError(f"torch.compile could not compile the model on {self.device} ({why}); "
                             "train without compile")

    # --- the arithmetic ------------------------------------------------------------------------
    def _loss(self, pred, labels):
        """The project's loss of ``pred`` (logits when the loss is fused with the last activation),
        reduced as ``core/losses.py`` does (core/torch_losses.py), with the run's class weights."""
        weights = self.network.loss.class_weights
        if weights is not None and (self._weights is None or self._weights[0] is not weights
                                    or self._weights[1].device != pred.device or self._weights[1].dtype != pred.dtype):
            self._weights = weights, self._torch.from_numpy(weights).to(pred.device, pred.dtype)
        return torch_loss(self._torch.nn.functional, self.network.loss.name, pred, labels,
                          None if weights is None else self._weights[1])

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


def _compile_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception behind it) comes from torch.compile's dynamo or inductor."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (type(exc).__module__ or "").startswith(("torch._dynamo", "torch._inductor")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _grad_scaler(torch, device: str):
    """fp16's loss scaler for ``device`` (torch.amp.GradScaler; torch.cuda.amp's before torch 2.3)."""
    kind = device.partition(":")[0]
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        return amp.GradScaler(kind)
    return torch.cuda.amp.GradScaler(enabled=kind == "cuda")


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
