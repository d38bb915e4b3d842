"""Finding PyTorch and its devices without importing it until needed: what the torch engine runs on.

``torch_installed`` looks for torch without importing it (the window's engine picker asks at
start-up); ``import_torch`` imports it or says how to install it; ``resolve_device`` turns the
user's "auto", "cpu", "cuda:N" or "mps" into a device that exists, or a one-line error.
"""
from __future__ import annotations

from netbuilder.core.errors import TrainingError

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
