"""Many processes: the torch engine over DistributedDataParallel, one process a GPU (or a share
of the CPU), on one machine or many, started by torchrun.

Every process builds the same trainer from the same project and seed, so each has the same
initial weights, the same split and the same shuffle of every epoch. Each global batch (the
project's batch size) is shared out by rank, strided: process r takes the batch's images r,
r + W, r + 2W, ... (W processes), so the union of the processes' batch k is exactly batch k of
one process, and shard sizes differ by one at most when W does not divide the batch. Each
process's loss is its shard's summed loss divided by the global batch size and multiplied by W;
DDP averages the gradients over the W processes, which makes the gradient exactly that of the
global batch's mean loss, whatever the shard sizes. With class weights, sizes are weights: the
shard's weighted summed loss is divided by the sum of the class weights over the global batch
(not its size), which every process knows from the batch's labels. The batch's loss and outputs
(so its accuracy) are gathered from every process, so every process sees the global figures and
makes the same decisions (divergence, stop).

BatchNorm. On CUDA the BatchNorm modules become SyncBatchNorm: batch statistics over the whole
global batch, as one process computes them, and the same running statistics everywhere. torch's
SyncBatchNorm runs on GPUs only, so on the CPU (gloo) each process normalises with its own
shard's statistics (DDP's behaviour), and after every step the running statistics are averaged
over the processes, weighted by shard size: the running mean is then the one process's (the
mean of the shard means is the batch mean), the running variance misses the spread between the
shard means, and every process holds the same buffers.

Validation is sharded the same way (every process evaluates its stride of each chunk, the losses
and outputs are gathered), so each process reports the global figures.

torch is imported only by the functions that need it.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import os
from dataclasses import dataclass

import numpy as np

from netbuilder.core.errors import TrainingError
from netbuilder.core.layers import Dropout
from netbuilder.core.layers.batchnorm import BatchNorm
from netbuilder.core.torch_devices import describe_device, import_torch, resolve_device
from netbuilder.core.torch_engine import TorchTrainer

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Launch:
    """Where this process stands among those torchrun started."""

    rank: int  # 0 to world - 1, over every machine; rank 0 prints and writes the files
    world: int
    local_rank: int  # on this machine: the GPU it takes

    @property
    def leader(self) -> bool:
        return self.rank == 0


def launched_by_torchrun(environ=None) -> Launch | None:
    """This process's place when torchrun started it (RANK, WORLD_SIZE and LOCAL_RANK set), else None."""
    environ = os.environ if environ is None else environ
    if not all(name in environ for name in TORCHRUN_ENV):
        return None
    try:
        rank, world, local = (int(environ[name]) for name in TORCHRUN_ENV)
    except ValueError:
        raise TrainingError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers, as torchrun sets them: "
                            + ", ".join(f"{n}={environ[n]!r}" for n in TORCHRUN_ENV)) from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise TrainingError(f"RANK {rank}, WORLD_SIZE {world}, LOCAL_RANK {local} do not fit together")
    return Launch(rank, world, local)


def device_kind(device: str | None) -> str:
    """"cpu" or "cuda": what each of many processes trains on (``device`` as ``--device`` gives it)."""
    torch = import_torch()
    text = "auto" if device is None else str(device).strip().lower()
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "mps":
        raise TrainingError("many processes cannot share the Apple GPU (torch.distributed has no backend for it); "
                            "use --device cpu, or one process")
    if text.startswith("cuda:"):
        resolve_device(text)  # says so if it does not exist
        raise TrainingError(f"with many processes each takes its own GPU, cuda:LOCAL_RANK; give --device cuda, "
                            f"not {device} (CUDA_VISIBLE_DEVICES chooses which GPUs)")
    return "cpu" if resolve_device(text) == "cpu" else "cuda"


def process_device(launch: Launch, device: str | None) -> str:
    """This process's device: cuda:LOCAL_RANK on CUDA, else the CPU."""
    if device_kind(device) == "cpu":
        return "cpu"
    torch = import_torch()
    count = torch.cuda.device_count()
    if launch.local_rank >= count:
        raise TrainingError(f"process {launch.rank} is number {launch.local_rank} on its machine, which has "
                            f"{count} GPU{'s' if count != 1 else ''}: start at most {count} processes a machine "
                            "(--nproc_per_node)")
    return f"cuda:{launch.local_rank}"


def check_processes(n: int, device: str | None) -> str:
    """The device kind for ``--processes n`` on this machine, checked: TrainingError if there are fewer GPUs."""
    kind = device_kind(device)
    if kind == "cuda":
        count = import_torch().cuda.device_count()
        if n > count:
            raise TrainingError(f"{n} processes need {n} GPUs, one each; torch sees {count}. Use --processes "
                                f"{count} or fewer, or --device cpu")
    return kind


def backend_for(device: str) -> str:
    return "nccl" if device.startswith("cuda") else "gloo"


@contextlib.contextmanager
def process_group(device: str):
    """The default process group for ``device`` (nccl on CUDA, gloo on the CPU), from the
    environment torchrun sets (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE); ended on the way out."""
    torch = import_torch()
    dist = torch.distributed
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device))
    try:
        yield
    finally:
        dist.destroy_process_group()


def torchrun_command(n: int, arguments: list[str], executable: str) -> list[str]:
    """torchrun on this machine, ``n`` processes each running ``python -m netbuilder <arguments>``."""
    return [executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
            "-m", "netbuilder", *arguments]


def make_distributed_trainer(project, dataset, device: str, checkpoint=None, **options):
    """The trainer of this process (the process group started), continuing ``checkpoint`` when given."""
    if checkpoint is not None:
        return DistributedTorchTrainer.from_checkpoint(checkpoint, dataset, project=project, device=device, **options)
    return DistributedTorchTrainer(project, dataset, device=device, **options)


class DistributedTorchTrainer(TorchTrainer):
    """``TorchTrainer`` as one of the processes of the default process group (see the module's doc).

    ``stop`` from any process stops them all after the same batch. ``pause`` and a new learning
    rate concern this process only (the others wait for a paused one in the next batch): the
    command line, which drives many processes, uses neither.
    """

    def __init__(self, project, dataset, network=None, dtype=np.float32, device: str | None = "cpu"):
        torch = import_torch()
        dist = torch.distributed
        if not dist.is_available() or not dist.is_initialized():
            raise TrainingError("training in many processes needs torch.distributed's process group: "
                                "start the processes with torchrun (or netbuilder train --processes N)")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self._dist = dist
        self._stop_wanted = False  # a stop asked of this process, shared with the others at the next gather
        super().__init__(project, dataset, network=network, dtype=dtype, device=device)
        if self.batch_size < self.world:
            raise TrainingError(f"a batch of {self.batch_size} cannot be shared by {self.world} processes: each "
                                f"needs at least one image of every batch; make the batch size at least {self.world}")
        if self.batch_size % self.world:
            small = self.batch_size // self.world
            self.notes.append(f"batch size {self.batch_size} over {self.world} processes: shards of {small + 1} "
                              f"and {small} images (the gradient is the whole batch's all the same)")
        self.synced_norms = self.device.startswith("cuda")  # SyncBatchNorm needs a GPU
        if any(isinstance(layer, Dropout) for stage in self.network.walk_stages() for layer in stage.layers):
            torch.manual_seed(self.settings.seed + self.rank)  # each shard its own masks
        self._ddp = None

    @property
    def device_description(self) -> str:
        many = f"{self.world} process{'es' if self.world != 1 else ''} ({backend_for(self.device)})"
        if self.device == "cpu":
            return f"cpu, {many}"
        return f"{many}, one GPU each; rank {self.rank} on {describe_device(self.device)}"

    def stop(self) -> None:
        """Stop every process after the same batch: this process's request is shared with the
        others at the next exchange of the batch's results (so after this batch or the next one),
        and every process then stops there."""
        self._stop_wanted = True

    # --- the engine hooks ----------------------------------------------------------------------
    def _start_engine(self) -> None:
        super()._start_engine()
        torch, net = self._torch, self.network
        if self.synced_norms:  # the same Parameter and buffer tensors, in SyncBatchNorm modules
            self._model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self._model)
        norm_types = torch.nn.modules.batchnorm._BatchNorm
        self._norms = [m for m in self._model.modules() if isinstance(m, norm_types)]
        self._single_value_norms = [
            self._model.get_submodule(stage.path) for stage in net.walk_stages()
            if any(isinstance(layer, BatchNorm) for layer in stage.layers)
            and int(np.prod(stage.info.input_shape[1:])) == 1]
        ids = [int(self.device.partition(":")[2])] if self.device.startswith("cuda") else None
        # The buffers are kept equal by SyncBatchNorm or by _average_norms, not broadcast from rank 0
        # before each forward pass (torch 2.13 renames the option; 2.11 has the old name only).
        ddp = torch.nn.parallel.DistributedDataParallel
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters \
            else "broadcast_buffers"
        self._ddp = ddp(self._model, device_ids=ids, **{no_sync: False})

    def _sync_engine(self, final: bool = False) -> None:
        super()._sync_engine(final)
        if final:
            self._stop_wanted = False

    def _step(self, xb, yb, epoch: int, batch: int, snapshot) -> tuple[float, np.ndarray]:
        torch, topt = self._torch, self._topt
        k, world = len(xb), self.world
        xs, ys = xb[self.rank::world], yb[self.rank::world]
        m = len(xs)
        self._net_lock.acquire()
        try:
            x = torch.from_numpy(np.ascontiguousarray(xs)).to(self.device, non_blocking=True)
            y = torch.from_numpy(np.ascontiguousarray(ys)).to(self.device, non_blocking=True)
            lr = self.optimizer.lr
            for group in topt.param_groups:
                group["lr"] = lr
            topt.zero_grad(set_to_none=True)
            self._model.train()
            if self.synced_norms:  # SyncBatchNorm takes empty and one-image shards; the numpy
                held = self._single_value_norms if k == 1 else []  # engine's rule for a batch of one
            elif m == 0:
                held = self._norms  # no statistics to take here
            else:  # statistics of this shard alone: the rule for one image of a feature applies to it
                held = self._single_value_norms if m == 1 else []
            for module in held:
                module.eval()
            trained = [module.training for module in self._norms]
            pred = self._ddp(x).reshape(m, self.network.output_features)
            # The shard's and the global batch's weights: their sizes, or with class weights the sums
            # of their images' weights (every process holds the whole batch's labels, so no exchange).
            mine, whole = self.network.loss.weight_of(ys), self.network.loss.weight_of(yb)
            if m:
                mean = self._loss(pred, y)
                scale = mine * world / whole  # DDP's average over the processes then makes it the batch's mean loss
                loss = mean if scale == 1 else mean * scale
            else:  # every process takes part in the gradients' all-reduce: zero gradients from this one
                mean = loss = pred.sum()
            loss.backward()
            value, outputs = self._gather(mean.detach() * mine, self._outputs(pred.detach()), k, whole)
            finite = math.isfinite(value) and bool(torch.stack(
                [torch.isfinite(p.grad).all() for p in self._params.values() if p.grad is not None]).all().item())
            if finite:
                topt.step()
                self.optimizer.steps += 1
                if not self.synced_norms:
                    self._average_norms(trained, m)
                return value, outputs
            diverged = self._divergence(value, epoch, batch, snapshot)
        finally:
            self._net_lock.release()
        raise diverged

    def _evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        torch, model, world = self._torch, self._model, self.world
        xs, ys = x[self.rank::world], y[self.rank::world]
        m = len(xs)
        model.eval()
        with torch.no_grad():
            if m:
                pred = model(torch.from_numpy(np.ascontiguousarray(xs)).to(self.device)).reshape(m, -1)
                total = self._loss(pred, torch.from_numpy(np.ascontiguousarray(ys)).to(self.device))
                total = total * self.network.loss.weight_of(ys)
                outputs = self._outputs(pred)
            else:
                total = torch.zeros((), device=self.device)
                outputs = torch.zeros((0, self.network.output_features), device=self.device)
            return self._gather(total, outputs, len(x), self.network.loss.weight_of(y))

    # --- the collectives -----------------------------------------------------------------------
    def _gather(self, loss_sum, outputs, k: int, weight: float) -> tuple[float, np.ndarray]:
        """The batch's mean loss and its outputs in the batch's order, from every process's shard
        (``loss_sum`` its summed loss, weighted by class where there are class weights, ``weight``
        the whole batch's: its size or its weights' sum; ``outputs`` its rows); also shares a stop
        asked of any process."""
        torch, world = self._torch, self.world
        width = self.network.output_features
        rows = -(-k // world)  # rank 0's shard, the largest
        packed = torch.zeros(2 + rows * width, dtype=torch.float64, device=self.device)
        packed[0] = loss_sum.to(torch.float64)
        packed[1] = float(self._stop_wanted)
        packed[2:2 + outputs.numel()] = outputs.reshape(-1).to(torch.float64)
        parts = [torch.empty_like(packed) for _ in range(world)]
        self._dist.all_gather(parts, packed)
        every = torch.stack(parts).cpu().numpy()
        if every[:, 1].any():  # every process learns it here, and stops before the next batch or chunk
            super().stop()
        out = np.empty((k, width), dtype=self.network.dtype)
        for rank in range(min(world, k)):
            shard = len(range(rank, k, world))
            out[rank::world] = every[rank, 2:2 + shard * width].reshape(shard, width)
        return float(every[:, 0].sum() / weight), out

    def _average_norms(self, trained: list[bool], m: int) -> None:
        """The running statistics averaged over the processes that updated them (weighted by shard
        size), and the batches counted as one process counts them: the same buffers everywhere."""
        torch = self._torch
        stats = [(module, buffer) for module in self._norms for buffer in (module.running_mean, module.running_var)
                 if buffer is not None]
        if not stats or self.world == 1:
            return
        weights = {id(module): float(m if was else 0) for module, was in zip(self._norms, trained)}
        flat = torch.cat([buffer.reshape(-1).to(torch.float64) * weights[id(module)] for module, buffer in stats]
                         + [torch.tensor([weights[id(module)] for module in self._norms], dtype=torch.float64,
                                         device=self.device)])
        self._dist.all_reduce(flat)
        totals = flat[-len(self._norms):].tolist()
        total_of = {id(module): total for module, total in zip(self._norms, totals)}
        at = 0
        with torch.no_grad():
            for module, buffer in stats:
                size, total = buffer.numel(), total_of[id(module)]
                if total > 0:
                    buffer.copy_((flat[at:at + size] / total).reshape(buffer.shape))
                at += size
            for module, was in zip(self._norms, trained):
                if not was and total_of[id(module)] > 0 and module.num_batches_tracked is not None:
                    module.num_batches_tracked += 1  # another process counted this batch
