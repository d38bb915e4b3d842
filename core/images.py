"""One image as the network sees it: the single preprocessing step shared by the image-folder
loader (``core.datasets.folder``), ``netbuilder predict`` and the window's Try view.

``prepare_image(source, input_shape, resize)`` turns an image file (any format Pillow reads: PNG,
palette PNG with transparency, JPEG, BMP, GIF, TIFF, WebP, PNM; grey, RGB, RGBA, 16-bit), an open
binary file, a PIL image or a numpy array into exactly the (C, H, W) float32 array in [0, 1] the
network takes, by the project's input shape:

Colour: converted to grey (C=1, ITU-R 601 luma, Pillow's "L") or RGB (C=3); transparency is
composited onto black; 16-bit and float images keep their full range (scaled to [0, 1]).
Resizing to H x W, by ``resize``:
  "fit" (default): scaled with its proportions kept so the whole image fits, the rest padded black.
  "crop": scaled with its proportions kept to cover the target; the overflow cut equally both sides.
  "pad": not scaled; centred on a black canvas (cut if larger).
  "stretch": scaled to the target, proportions not kept.
Bytes become exactly k / 255. A JPEG file is decoded at a reduced scale (Pillow's ``draft``) when
that is still at least the target size, as the loader always did; a PIL image already decoded is
taken as it is.

The input normalisation (the dataset's mean and std) is not applied here: the network applies it
itself (``Network.set_normalization``), so ``network.predict(prepare_image(...)[None])`` gives the
engine's numbers for the image.

Arrays: (H, W) is grey; (H, W, C) or (C, H, W) with C of 1, 3 or 4 (RGBA) is colour, the channels
last when the last axis is 1, 3 or 4. uint8 is bytes, uint16 16-bit; a float array is taken as
[0, 1] (values outside are clipped): a grey one keeps its precision, a colour one is rounded to 8
bits, except that an array already of the target shape (C, H, W) is only clipped and cast.
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from netbuilder.core.datasets.base import DatasetError

RESIZE_MODES = ("fit", "crop", "pad", "stretch")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class ImageError(DatasetError):
    """An image that cannot be prepared; the message names it and says why, in one line."""


@dataclass(frozen=True)
class PreparedImage:
    """``array`` (C, H, W) float32 in [0, 1], the source's Pillow mode, whether its size changed."""

    array: np.ndarray
    mode: str
    resized: bool


def prepare_image(source, input_shape: Sequence[int], resize: str = "fit") -> np.ndarray:
    """``source`` (a path, a binary file, a PIL image or an array) as (C, H, W) float32 in [0, 1].

    Raises ``ImageError`` naming the source and the reason when it cannot be read or converted.
    """
    shape = check_input_shape(input_shape)
    check_resize(resize)
    try:
        return decode_image(source, shape, resize).array
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever Pillow raises for a bad file, one clear line
        raise ImageError(f"{describe_source(source)}: cannot be read as an image: {failure_reason(exc)}") from exc


def decode_image(source, shape: tuple[int, int, int], resize: str) -> PreparedImage:
    """What ``prepare_image`` does, for a checked ``shape`` and ``resize``, with the source's mode and
    whether it was resized (the loader's report); Pillow's exceptions are not translated."""
    from PIL import Image

    c, h, w = shape
    if isinstance(source, np.ndarray):
        direct = _array_as_is(source, shape)
        if direct is not None:
            return direct
        source = _array_to_image(source)
    if isinstance(source, Image.Image):
        return _finish(source, shape, resize)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    with Image.open(source) as im:
        mode, size = im.mode, im.size  # the file's, before a draft changes them
        if im.format == "JPEG" and resize != "pad" and size != (w, h):
            im.draft("L" if c == 1 else "RGB", (w, h))  # decode at a reduced scale, still >= target
        im.load()
        return _finish(im, shape, resize, mode, size)


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """(C, H, W) as ints, C of 1 or 3 and sides of 1 to 4096, else ``DatasetError``."""
    try:
        c, h, w = (int(v) for v in input_shape)
        valid = all(int(v) == v and not isinstance(v, bool) for v in input_shape)
    except (TypeError, ValueError):
        valid = False
    if not valid or c not in (1, 3) or not (1 <= h <= 4096 and 1 <= w <= 4096):
        raise DatasetError(
            "image folder: input_shape must be [channels, height, width] with 1 (grey) or 3 (RGB) channels "
            f"and sides of 1 to 4096 pixels, got {input_shape!r}"
        )
    return c, h, w


def check_resize(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise DatasetError(f"image folder: resize must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
    return resize


def failure_reason(exc: BaseException) -> str:
    """Why an image could not be read, in a few words (for a report line)."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image file Pillow can read"
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def describe_source(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, np.ndarray):
        return f"array {source.dtype} {'x'.join(map(str, source.shape))}"
    name = getattr(source, "name", None) or getattr(source, "filename", None)
    return str(name) if name else type(source).__name__


# --- the steps --------------------------------------------------------------------------------
def _finish(im, shape: tuple[int, int, int], resize: str, mode: str | None = None,
            size: tuple[int, int] | None = None) -> PreparedImage:
    c, h, w = shape
    mode, size = mode or im.mode, size or im.size
    im = convert_mode(im, c)
    im = resize_image(im, w, h, resize)
    a = np.asarray(im, dtype=np.float32)
    if im.mode == "F":
        a = np.clip(a, 0.0, 1.0)
    else:
        a = a / np.float32(255)  # as every loader scales bytes: exactly k / 255
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    if c == 3 and a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    return PreparedImage(np.ascontiguousarray(a, dtype=np.float32), mode, size != (w, h))


def convert_mode(im, c: int):
    """``im`` as "L" (c=1) or "RGB" (c=3), or as "F" in [0, 1] for 16-bit and float images."""
    from PIL import Image

    if im.mode in SIXTEEN_BIT_MODES or im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        scale = 1.0 if im.mode == "F" and a.max(initial=0) <= 1.0 else (255.0 if im.mode == "F" else 65535.0)
        return Image.fromarray(np.clip(a / np.float32(scale), 0, 1).astype(np.float32), mode="F")
    if "A" in im.mode or "a" in im.mode or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), rgba)
    target = "L" if c == 1 else "RGB"
    return im if im.mode == target else im.convert(target)


def resize_image(im, w: int, h: int, resize: str):
    """``im`` at w x h by the resize mode (see the module's docstring)."""
    from PIL import Image

    W, H = im.size
    if (W, H) == (w, h):
        return im
    if resize == "stretch":
        return im.resize((w, h), Image.Resampling.BILINEAR)
    if resize != "pad":
        s = min(w / W, h / H) if resize == "fit" else max(w / W, h / H)
        im = im.resize((max(1, round(W * s)), max(1, round(H * s))), Image.Resampling.BILINEAR)
    canvas = Image.new(im.mode, (w, h), 0)
    # A negative offset crops: paste clips to the canvas.
    canvas.paste(im, ((w - im.size[0]) // 2, (h - im.size[1]) // 2))
    return canvas


def _channels_last(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return a
    if a.ndim == 3 and a.shape[-1] in (1, 3, 4):
        return a
    if a.ndim == 3 and a.shape[0] in (1, 3, 4):
        return np.moveaxis(a, 0, -1)
    raise ImageError(f"an image array must be (H, W), (H, W, C) or (C, H, W) with C of 1, 3 or 4, "
                     f"got shape {a.shape}")


def _array_as_is(a: np.ndarray, shape: tuple[int, int, int]) -> PreparedImage | None:
    """A float (C, H, W) array already of the target shape: clipped to [0, 1], nothing else."""
    if a.shape != shape or not np.issubdtype(a.dtype, np.floating):
        return None
    mode = "F" if shape[0] == 1 else "RGB"
    return PreparedImage(np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0), mode, False)


def _array_to_image(a: np.ndarray):
    from PIL import Image

    a = _channels_last(np.asarray(a))
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        a = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
        if a.ndim == 2:
            return Image.fromarray(a)
        a = np.round(a * 255).astype(np.uint8)
    elif a.dtype == np.uint16:
        if a.ndim == 2:
            return Image.fromarray((a / np.float32(65535)).astype(np.float32))
        a = np.round(a / 257.0).astype(np.uint8)
    elif a.dtype != np.uint8:
        if a.min(initial=0) < 0 or a.max(initial=0) > 255:
            raise ImageError(f"an integer image array must hold 0..255, got {a.min()}..{a.max()}")
        a = a.astype(np.uint8)
    if a.ndim == 2:
        return Image.fromarray(a)  # "L"
    return Image.fromarray(np.ascontiguousarray(a))  # "RGB" or "RGBA"


__all__ = ["RESIZE_MODES", "ImageError", "PreparedImage", "prepare_image", "decode_image", "check_input_shape",
           "check_resize", "failure_reason", "describe_source", "convert_mode", "resize_image"]
