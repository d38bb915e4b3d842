"""Data augmentation of a training batch: seeded, reproducible, vectorised over the batch in numpy.

A batch is (N, C, H, W) float32 pixels in [0, 1] (before the network's normalisation, which the
network applies itself). Each augmentation has its own setting and all are off by default:

- ``shift``: a random shift of each image by up to that many pixels, vertically and horizontally
  (whole pixels, each drawn uniformly from -shift..shift), the uncovered border filled with 0: the
  "pad by k, crop back at random" of torchvision's ``RandomCrop(size, padding=k)``.
- ``flip``: the probability that an image is mirrored left to right.
- ``rotate``: a rotation of each image about its centre by an angle drawn uniformly from
  -rotate..rotate degrees (positive: counter-clockwise as displayed), corners filled with 0;
  ``interpolation`` is ``"bilinear"`` (default) or ``"nearest"``.
- ``contrast``: each image's pixels scaled about its own mean by a factor drawn from
  1-contrast..1+contrast.
- ``brightness``: an offset drawn from -brightness..brightness added to each image.
- ``noise``: Gaussian noise of that standard deviation added to each pixel.

They apply in that order (flip, rotate and shift as one resampling of each image; then contrast,
brightness, noise), and the result is clipped to [0, 1]. Shapes and dtype (float32) are kept; the
input is never written to. Every per-image parameter is drawn at once for the whole batch and
each step is whole-array numpy (one gather per image corner for the resampling), so there is no
Python loop per image.

    aug = Augmentation.from_spec({"shift": 2, "flip": 0.5, "rotate": 10})
    aug.describe()                  # 'shift 2 px · flip 50% · rotate ±10°'
    xb = aug.augment(xb, rng)       # a new array; xb as it was
    aug.to_spec()                   # {'shift': 2, 'flip': 0.5, 'rotate': 10}

``transform(x, ...)`` applies given per-image parameters (no randomness), ``Augmentation.sample``
draws them; ``augment`` is the two together.

How it is meant to be wired (not yet done; the trainer and the project format change first):

- The spec lives in the project's training settings as ``"augmentation": {...}`` (``TrainingSettings``
  gains an ``augmentation`` field, ``None`` or a dict, checked with ``Augmentation.from_spec`` where
  the other training settings are checked, the ``ValueError``'s text becoming the problem's
  message with ``field="training.augmentation"``). A missing key or ``None`` is no augmentation,
  so existing projects train exactly as before.
- It is applied to each *training* batch after the batch is gathered (``np.take`` into the
  trainer's batch buffer) and before the step: ``xb = aug.augment(xb, aug_rng)``. Never to the
  validation or test split, the probes, the previews of feature maps, evaluation or exports.
- ``aug_rng = augmentation_rng(settings.seed)``: a generator of its own derived from the project's
  seed, so that turning augmentation on changes neither the weight initialisation nor the
  shuffling, and so that both engines see identical batches: the torch engine gathers its batches
  in numpy in the same order, augments them here with the same generator, then converts them to
  tensors. Its ``bit_generator.state`` travels in checkpoints beside the trainer's own generator,
  so a resumed run continues with the same augmented batches.
- The Data tab's preview shows ``aug.augment(np.repeat(image[None], 16, 0), rng)`` as a grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from netbuilder.core.project import _show, _suggest

INTERPOLATIONS = ("bilinear", "nearest")
MAX_SHIFT = 64
MAX_ROTATE = 180.0

# name, what it must be (for the message), lower bound, upper bound, whole number?
_NUMBERS: tuple[tuple[str, str, float, float, bool], ...] = (
    ("shift", f"a whole number of pixels from 0 to {MAX_SHIFT}", 0, MAX_SHIFT, True),
    ("flip", "a probability from 0 to 1 (0.5 flips half the images)", 0.0, 1.0, False),
    ("rotate", f"a number of degrees from 0 to {MAX_ROTATE:g}", 0.0, MAX_ROTATE, False),
    ("contrast", "a number from 0 to 1 (0.2 scales each image's contrast by 0.8 to 1.2)", 0.0, 1.0, False),
    ("brightness", "a number from 0 to 1 (0.1 adds -0.1 to 0.1 to each image)", 0.0, 1.0, False),
    ("noise", "a standard deviation from 0 to 1 (pixels are in [0, 1]; 0.02 is light noise)", 0.0, 1.0, False),
)
_KEYS = tuple(n[0] for n in _NUMBERS) + ("interpolation",)
_ALIASES = {"translate": "shift", "crop": "shift", "hflip": "flip", "horizontal_flip": "flip",
            "rotation": "rotate", "degrees": "rotate", "gaussian_noise": "noise", "mode": "interpolation"}

# The generator of the augmentation draws, derived from the project's seed ("aug" in ASCII): a
# stream of its own, so that it leaves the trainer's generator (initialisation, shuffling) as it was.
_STREAM = 0x617567


def augmentation_rng(seed: int) -> np.random.Generator:
    """The generator for a run's augmentation draws, from the project's seed (see the module's notes)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM,)))


@dataclass(frozen=True)
class Augmentation:
    """Which augmentations apply and how strongly; the default is none."""

    shift: int = 0
    flip: float = 0.0
    rotate: float = 0.0
    contrast: float = 0.0
    brightness: float = 0.0
    noise: float = 0.0
    interpolation: str = "bilinear"

    @classmethod
    def from_spec(cls, spec: dict | None) -> Augmentation:
        """From the project's ``"augmentation"`` object (``None`` or ``{}``: none). Raises a one-line
        ``ValueError`` naming the setting and the value for anything out of range or unknown."""
        if spec is None:
            return cls()
        if not isinstance(spec, dict):
            raise ValueError(f'augmentation must be an object like {{"shift": 2, "flip": 0.5}} (or null), '
                             f"got {_show(spec)}")
        for key in spec:
            if key not in _KEYS:
                alias = _ALIASES.get(key) if isinstance(key, str) else None
                hint = f' (did you mean "{alias}"?)' if alias else _suggest(key, _KEYS)
                raise ValueError(f"augmentation: unknown setting {_show(key)}{hint}; the settings are "
                                 + ", ".join(_KEYS))
        values: dict[str, Any] = {}
        for name, what, low, high, whole in _NUMBERS:
            if name not in spec:
                continue
            v = spec[name]
            ok = (type(v) is int or (type(v) is float and not whole)) and math.isfinite(v) and low <= v <= high
            if not ok:
                hint = " (true/false is not a number)" if isinstance(v, bool) else ""
                if whole and type(v) is float and math.isfinite(v) and v.is_integer() and low <= v <= high:
                    ok, v = True, int(v)  # 2.0 from a JSON writer is 2
                if not ok:
                    raise ValueError(f"augmentation.{name} must be {what}, got {_show(v)}{hint}")
            values[name] = v
        if "interpolation" in spec:
            v = spec["interpolation"]
            if not (type(v) is str and v in INTERPOLATIONS):
                raise ValueError(f"augmentation.interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                                 f"got {_show(v)}{_suggest(v, INTERPOLATIONS)}")
            values["interpolation"] = v
        return cls(**values)

    def to_spec(self) -> dict:
        """The settings that differ from the default, as JSON values (``{}`` for none)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    @property
    def enabled(self) -> bool:
        """Whether any augmentation applies (the interpolation alone changes nothing)."""
        return any(getattr(self, name) for name, *_ in _NUMBERS)

    def describe(self) -> str:
        """One line for the window and the CLI: 'shift 2 px · flip 50% · rotate ±10°', or 'none'."""
        parts = []
        if self.shift:
            parts.append(f"shift {self.shift} px")
        if self.flip:
            parts.append(f"flip {self.flip * 100:g}%")
        if self.rotate:
            parts.append(f"rotate ±{self.rotate:g}°" + (" (nearest)" if self.interpolation == "nearest" else ""))
        if self.contrast:
            parts.append(f"contrast ±{self.contrast * 100:g}%")
        if self.brightness:
            parts.append(f"brightness ±{self.brightness:g}")
        if self.noise:
            parts.append(f"noise σ {self.noise:g}")
        return " · ".join(parts) or "none"

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Per-image parameters for a batch of ``shape`` (N, C, H, W), drawn in a fixed order, only
        for the augmentations that are on: ``transform``'s keyword arguments."""
        n = shape[0]
        p: dict[str, np.ndarray] = {}
        if self.shift:
            p["shift_y"] = rng.integers(-self.shift, self.shift + 1, n)
            p["shift_x"] = rng.integers(-self.shift, self.shift + 1, n)
        if self.flip:
            p["flip"] = rng.random(n) < self.flip
        if self.rotate:
            p["angle"] = rng.uniform(-self.rotate, self.rotate, n)
        if self.contrast:
            p["contrast"] = rng.uniform(1 - self.contrast, 1 + self.contrast, n).astype(np.float32)
        if self.brightness:
            p["brightness"] = rng.uniform(-self.brightness, self.brightness, n).astype(np.float32)
        if self.noise:
            p["noise"] = rng.standard_normal(shape, dtype=np.float32)
            p["noise"] *= np.float32(self.noise)
        return p

    def augment(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A new, augmented (N, C, H, W) float32 batch in [0, 1]; ``x`` is left as it was."""
        x = _batch(x)
        return transform(x, **self.sample(x.shape, rng), interpolation=self.interpolation)


def _batch(x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"augmentation needs a batch of images (N, C, H, W), got an array of shape {x.shape}")
    return x.astype(np.float32, copy=False)


def transform(x: np.ndarray, *, shift_y=None, shift_x=None, flip=None, angle=None, contrast=None,
              brightness=None, noise=None, interpolation: str = "bilinear") -> np.ndarray:
    """``x`` (N, C, H, W) with the given per-image parameters (arrays of N, or ``None`` for off;
    ``noise`` is the (N, C, H, W) array to add), as a new float32 array clipped to [0, 1].

    Each output pixel is read from where flip, then rotation by ``angle`` degrees about the centre,
    then the shift by (``shift_y``, ``shift_x``) pixels (down, right) take it from; outside the
    image reads 0."""
    x = _batch(x)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {_show(interpolation)}")
    if angle is not None and np.any(angle):
        out = _resample(x, shift_y, shift_x, flip, np.asarray(angle, np.float64), interpolation)
    elif shift_y is not None or shift_x is not None or flip is not None:
        out = _shift_flip(x, shift_y, shift_x, flip)
    else:
        out = x.copy()
    if contrast is not None:
        factor = np.asarray(contrast, np.float32).reshape(-1, 1, 1, 1)
        mean = out.mean(axis=(1, 2, 3), keepdims=True, dtype=np.float32)
        out *= factor
        out += mean * (1 - factor)  # (x - mean) * factor + mean, exact where the factor is 1
    if brightness is not None:
        out += np.asarray(brightness, np.float32).reshape(-1, 1, 1, 1)
    if noise is not None:
        out += np.asarray(noise, np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _framed(x: np.ndarray) -> np.ndarray:
    """``x`` inside a frame of zeros, 1 pixel above and left, 2 below and right, flattened: every
    read outside the image (indices clipped to the frame) gives 0, and so does the bilinear
    neighbour below or right of the last frame row or column."""
    n, c, h, w = x.shape
    framed = np.zeros((n, c, h + 3, w + 3), np.float32)
    framed[:, :, 1:h + 1, 1:w + 1] = x
    return framed.reshape(-1)


def _planes(n: int, c: int, hp: int, wp: int, local: np.ndarray) -> np.ndarray:
    """Flat indices (N, C, H*W) into the framed batch from each image's (N, H*W) indices in its plane."""
    start = (np.arange(n * c, dtype=np.intp) * (hp * wp)).reshape(n, c, 1)
    return start + local.reshape(n, 1, -1)


def _shift_flip(x: np.ndarray, shift_y, shift_x, flip) -> np.ndarray:
    """Whole-pixel shifts and mirrors: one gather of every pixel from where it comes, outside the
    image reading the zero frame."""
    n, c, h, w = x.shape
    if shift_y is None and shift_x is None:  # flip alone: mirror the chosen images
        out = x.copy()
        chosen = np.asarray(flip, bool)
        out[chosen] = x[chosen, :, :, ::-1]
        return out
    rows = np.arange(h, dtype=np.intp)[None, :] - _per_image(shift_y, n)  # (N, H): each output row's source
    cols = np.arange(w, dtype=np.intp)[None, :] - _per_image(shift_x, n)
    if flip is not None:
        cols = np.where(np.asarray(flip, bool)[:, None], w - 1 - cols, cols)
    wp = w + 3
    local = (np.clip(rows, -1, h) + 1)[:, :, None] * wp + (np.clip(cols, -1, w) + 1)[:, None, :]
    return np.take(_framed(x), _planes(n, c, h + 3, wp, local)).reshape(n, c, h, w)


def _per_image(v, n: int) -> np.ndarray:
    return np.zeros((n, 1), np.intp) if v is None else np.asarray(v, np.intp).reshape(n, 1)


def _resample(x: np.ndarray, shift_y, shift_x, flip, angle: np.ndarray, interpolation: str) -> np.ndarray:
    """Flip, rotation and shift as one inverse map per image, sampled (nearest or bilinear) from the
    image in a frame of zeros: one flat gather of all N*C*H*W pixels per corner."""
    n, c, h, w = x.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    theta = np.radians(angle).reshape(n, 1, 1)
    cos, sin = np.cos(theta).astype(np.float32), np.sin(theta).astype(np.float32)
    # Undo the shift, then the rotation, in coordinates about the centre with y up.
    v = (cy - (np.arange(h)[None, :, None] - _per_image(shift_y, n)[:, :, None])).astype(np.float32)
    u = (np.arange(w)[None, None, :] - _per_image(shift_x, n)[:, :, None] - cx).astype(np.float32)
    col = cx + (cos * u + sin * v)  # (N, H, W)
    row = cy - (cos * v - sin * u)
    if flip is not None:  # then the flip
        col = np.where(np.asarray(flip, bool)[:, None, None], np.float32(w - 1) - col, col)
    hp, wp = h + 3, w + 3
    flat = _framed(x)
    if interpolation == "nearest":
        rows = np.clip(np.rint(row), -1, h).astype(np.intp) + 1
        local = rows * wp + np.clip(np.rint(col), -1, w).astype(np.intp) + 1
        return np.take(flat, _planes(n, c, hp, wp, local)).reshape(n, c, h, w)
    # Clipped to the frame's first row/column and the image's next one, a corner and its neighbour
    # below or right both read zeros wherever the point is outside the image.
    np.clip(row, -1, h, out=row)
    np.clip(col, -1, w, out=col)
    r0, c0 = np.floor(row), np.floor(col)
    fr, fc = (row - r0).reshape(n, 1, h * w), (col - c0).reshape(n, 1, h * w)
    index = _planes(n, c, hp, wp, (r0.astype(np.intp) + 1) * wp + c0.astype(np.intp) + 1)
    top = np.take(flat, index)
    top += (np.take(flat[1:], index) - top) * fc
    bottom = np.take(flat[wp:], index)
    bottom += (np.take(flat[wp + 1:], index) - bottom) * fc
    top += (bottom - top) * fr
    return top.reshape(n, c, h, w)
