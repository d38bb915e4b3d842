"""Learning-rate schedules: the project's ``training.schedule``, applied by the trainer before every batch.

``{"kind": "step", "every": 10, "gamma": 0.5}`` halves the rate every 10 epochs; ``"cosine"``
falls along half a cosine from the rate to ``floor`` × the rate over the run, batch by batch;
``"plateau"`` multiplies it by ``factor`` when the validation loss has not improved by ``min_delta``
for ``patience`` epochs; ``"constant"`` keeps it. Any of them may start with ``"warmup": K``: the
rate grows linearly from rate/(K·batches) to the rate over the first K epochs, batch by batch.

The rate a batch trains with is ``base × factor(position)``, where ``base`` starts as the project's
``learning_rate``; a rate set by hand during a run becomes the rate now, and the schedule goes on
from it (``base`` is rescaled), as the train panel says.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

KINDS = ("constant", "step", "cosine", "plateau")
_FIELDS = {
    "constant": {},
    "step": {"every": (int, 1, 10**6, 10), "gamma": (float, 0.0, 1.0, 0.1)},
    "cosine": {"floor": (float, 0.0, 1.0, 0.0)},
    "plateau": {"patience": (int, 0, 10**6, 2), "factor": (float, 0.0, 1.0, 0.5),
                "min_delta": (float, 0.0, math.inf, 0.0)},
}


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else f'"{value}"'


@dataclass
class Schedule:
    """A checked schedule with the state it keeps between epochs (for plateau)."""

    kind: str = "constant"
    warmup: int = 0  # epochs of linear warm-up before the schedule
    settings: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0  # plateau's reductions so far
    best: float | None = None  # plateau: the best validation loss so far
    waited: int = 0  # plateau: epochs since it improved

    @classmethod
    def from_spec(cls, spec: dict | None) -> Schedule:
        """From ``training.schedule`` (None: constant); ValueError names the setting and the value."""
        if spec is None:
            return cls()
        if not isinstance(spec, dict):
            raise ValueError(f'schedule must be an object like {{"kind": "cosine", "warmup": 2}} (or null), '
                             f"got {_show(spec)}")
        kind = spec.get("kind", "constant")
        if kind not in KINDS:
            raise ValueError(f"schedule.kind must be one of {', '.join(KINDS)}, got {_show(kind)}")
        allowed = _FIELDS[kind]
        for key in spec:
            if key not in ("kind", "warmup", *allowed):
                raise ValueError(f"schedule: {_show(key)} is not a setting of a {kind} schedule; its settings are "
                                 + ", ".join(("warmup", *allowed)))
        warmup = spec.get("warmup", 0)
        if type(warmup) is not int or not 0 <= warmup <= 10**6:
            raise ValueError(f"schedule.warmup must be a whole number of epochs (0 for none), got {_show(warmup)}")
        values = {}
        for name, (kind_of, low, high, default) in allowed.items():
            v = spec.get(name, default)
            whole = kind_of is int
            ok = (type(v) is int if whole else type(v) in (int, float)) and math.isfinite(v) and low <= v <= high
            if name in ("every",) and ok:
                ok = v >= 1
            if name in ("gamma", "factor") and ok:
                ok = 0 < v < 1
            if not ok:
                what = ("a whole number of epochs of at least 1" if name == "every" else
                        "a number between 0 and 1 (exclusive)" if name in ("gamma", "factor") else
                        "a number from 0 to 1" if name == "floor" else
                        "a whole number of epochs of at least 0" if whole else "a number of at least 0")
                raise ValueError(f"schedule.{name} must be {what}, got {_show(v)}")
            values[name] = float(v) if not whole else int(v)
        return cls(kind, warmup, values)

    def to_spec(self) -> dict:
        spec = {"kind": self.kind, **self.settings}
        if self.warmup:
            spec["warmup"] = self.warmup
        return spec

    @property
    def active(self) -> bool:
        """Whether the rate ever differs from the project's."""
        return self.kind != "constant" or self.warmup > 0

    def factor(self, epoch: int, batch: int, batches: int, total_epochs: int) -> float:
        """The multiplier of the base rate for batch ``batch`` (1-based) of epoch ``epoch`` (1-based)
        of a run of ``total_epochs`` epochs of ``batches`` batches."""
        step = (epoch - 1) * batches + (batch - 1)  # batches trained before this one
        warm = self.warmup * batches
        if step < warm:
            return (step + 1) / warm
        if self.kind == "step":
            return self.settings["gamma"] ** ((epoch - 1 - self.warmup) // self.settings["every"])
        if self.kind == "cosine":
            span = max((total_epochs - self.warmup) * batches, 1)
            t = min(step - warm, span) / span
            floor = self.settings["floor"]
            return floor + (1 - floor) * (1 + math.cos(math.pi * t)) / 2
        return self.scale  # constant (1) or plateau

    def epoch_ended(self, val_loss: float | None) -> None:
        """Plateau: after each epoch, with its validation loss (None without a validation split)."""
        if self.kind != "plateau" or val_loss is None or not math.isfinite(val_loss):
            return
        if self.best is None or val_loss < self.best - self.settings["min_delta"]:
            self.best, self.waited = val_loss, 0
            return
        self.waited += 1
        if self.waited > self.settings["patience"]:
            self.scale *= self.settings["factor"]
            self.waited = 0

    def state(self) -> dict:
        """What a checkpoint keeps (the plateau's progress)."""
        return {"scale": self.scale, "best": self.best, "waited": self.waited}

    def restore(self, state: dict | None) -> None:
        if state:
            self.scale, self.best, self.waited = float(state["scale"]), state["best"], int(state["waited"])

    def describe(self) -> str:
        parts = [f"warm-up {self.warmup} epoch{'s' if self.warmup != 1 else ''}"] if self.warmup else []
        s = self.settings
        if self.kind == "step":
            parts.append(f"× {s['gamma']:g} every {s['every']} epoch{'s' if s['every'] != 1 else ''}")
        elif self.kind == "cosine":
            parts.append(f"cosine to {s['floor']:g} × the rate")
        elif self.kind == "plateau":
            parts.append(f"× {s['factor']:g} after {s['patience']} epochs without a better validation loss")
        return ", then ".join(parts) or "constant"
