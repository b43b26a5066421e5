"""Reading one image file: its size checked from the header, its pixels scaled to 8 bits by their real range.

PIL's own conversions are wrong for high-bit-depth images: ``convert("L")`` clips 16-bit and 32-bit integer
pixels to 255 (a 16-bit image of mean 50% arrives white) and truncates float pixels to 0 or 1. Here they are
scaled by the range of their bit depth instead, then rounded to the uint8 the rest of the project works in:

- ``I;16`` (``I;16B``, ``I;16L``...): 16-bit unsigned, ``0..65535``;
- ``I``: 32-bit signed integers holding the file's samples: a TIFF's declared ``BitsPerSample`` (and sign) gives
  the range; other formats (16-bit PNG and PGM/PPM in some Pillow versions) store 16-bit samples, ``0..65535``;
- ``F``: float intensities in ``[0, 1]``, the convention of float images in torchvision and scikit-image.

A pixel outside its range (a negative or NaN float, a float image in ``0..255``) refuses the image with a
message saying so rather than clipping it. A photo is turned upright by its EXIF orientation, as a browser shows it
(a phone stores a portrait photo sideways), and transparent pixels are composited over :data:`BACKGROUND` (white,
like the page they would be shown on), never read as the colour hidden under them. Every other mode (1, L, P, RGB,
RGBA, CMYK, ...) is 8-bit already;
PIL reads 16-bit RGB files as 8-bit RGB itself, correctly scaled.

Images larger than a pixel limit are refused from their header, before any pixel is decoded: by default PIL's
decompression-bomb warning level (``PIL.Image.MAX_IMAGE_PIXELS``, 89.5 megapixels), or
``$MODERNCNN_MAX_PIXELS`` (a number, or ``none`` for no limit), or ``max_pixels=`` in Python. So are images more
than :data:`MAX_ASPECT` times longer than wide (a 1x80,000,000 PNG is 155 KB): no network input is made from them.

Where the caller knows the side the image is resized to (``input_size``), the image is shrunk by whole factors,
each side on its own (JPEG while decoding, with ``draft``; others with ``reduce``), while each side stays at least
:data:`REDUCE_MARGIN` times that size, before any tensor exists: the later antialiased resize gives nearly the same
pixels, and the work and memory after decoding are bounded by the network's input, not by the file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from moderncnn.errors import DataError, UsageError

PIXEL_LIMIT_ENV = "MODERNCNN_MAX_PIXELS"
_ROWS = 512  # rows converted at a time: a 16-bit 12000 px wide image needs ~25 MB of float32 per block, not 576 MB
_PIL_LIMIT_LOCK = threading.Lock()
MAX_ASPECT = 100  # longer side over shorter side; the widest panoramas people take are about 10:1
# Sides kept >= 8x the input size: box-reducing that far moves the antialiased resize after it by at most ~5 grey levels
# at sharp edges (4.6 for 100 px blocks of random colours resized to 28; at 4x it was 21), 0.2 on noise.
REDUCE_MARGIN = 8
BACKGROUND = (255, 255, 255)  # what transparent pixels are composited over
_ORIENTATION = 0x0112  # the EXIF tag
_FULL_SIZE = "moderncnn.full_size"  # in a reduced image's info: the size it was reduced from


class UnreadableImage(DataError):
    """An image file that cannot be read, or that this project will not read (not an image, damaged, too large, too
    elongated, pixels outside their range): the one error of every reader of image files. ``reason`` says why;
    ``str()`` is ``"PATH: reason"`` when the path is known, else the reason alone."""

    def __init__(self, reason: str, path: str | os.PathLike | None = None):
        super().__init__(f"{path}: {reason}" if path is not None else reason)
        self.path, self.reason = (str(path) if path is not None else None), reason


def pixel_limit(max_pixels: int | None = None) -> tuple[int | None, str]:
    """The largest image accepted, in pixels (``None``: no limit), and where that limit comes from."""
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise UsageError(f"max_pixels must be a positive number of pixels, got {max_pixels!r}")
        return max_pixels, "max_pixels"
    text = os.environ.get(PIXEL_LIMIT_ENV, "").strip()
    if text.lower() == "none":
        return None, PIXEL_LIMIT_ENV
    if text:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise UsageError(f"{PIXEL_LIMIT_ENV} must be a positive number of pixels or 'none', got {text!r}")
        return value, PIXEL_LIMIT_ENV
    with _PIL_LIMIT_LOCK:  # not while another thread has it lifted
        return Image.MAX_IMAGE_PIXELS, "PIL's decompression-bomb warning level, PIL.Image.MAX_IMAGE_PIXELS"


def size_problem(size: tuple[int, int], limit: int | None, source: str) -> str | None:
    """Why an image of ``size`` (width, height) is refused under ``limit``, or ``None`` if it is not."""
    width, height = size
    pixels = width * height
    if max(width, height) > MAX_ASPECT * max(min(width, height), 1):
        return (
            f"{width}x{height} is more than {MAX_ASPECT} times longer than wide; a network sees such an image "
            "squeezed into a square, so crop it to the part that matters"
        )
    if limit is None or pixels <= limit:
        return None
    return (
        f"{width}x{height} = {pixels:,} pixels, above the limit of {limit:,} ({source}); if you trust the file, "
        f"raise the limit with {PIXEL_LIMIT_ENV}={pixels} (or max_pixels= in Python), or make the image smaller"
    )


@contextmanager
def _pil_check_lifted() -> Iterator[None]:
    """``Image.open`` without PIL's own bomb check (a warning above its limit, an error above twice that): ours,
    made next from the header, applies instead, with a message that names the file and the way to raise it."""
    # PIL keeps its limit in a module global; lifting it is serialised so that two threads cannot restore it wrongly.
    with _PIL_LIMIT_LOCK:
        pil = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = pil


def _integer_range(im: Image.Image) -> int:
    """The largest value a mode ``I`` image's samples can take (see the module docstring)."""
    tags = getattr(im, "tag_v2", None)
    if im.format == "TIFF" and tags is not None and 258 in tags:
        bits = tags[258][0] if isinstance(tags[258], tuple) else int(tags[258])
        signed = tags.get(339, 1) in (2, (2,))
        return 2 ** (bits - 1 if signed else bits) - 1
    return 65535


def _to_8bit(im: Image.Image, path: str | os.PathLike) -> Image.Image:
    """``im`` with high-bit-depth pixels scaled to an 8-bit ``L`` image; 8-bit images unchanged."""
    if im.mode.startswith("I;16"):
        top, what = 65535, "16-bit"
    elif im.mode == "I":
        top, what = _integer_range(im), "integer"
    elif im.mode == "F":
        top, what = 1.0, "float"
    else:
        return im
    pixels = np.asarray(im)
    low, high = pixels.min(), pixels.max()
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > top:
        raise UnreadableImage(
            f"its {what} pixels (mode {im.mode}) range from {low:g} to {high:g}, outside 0..{top:g}; they are read "
            "as intensities in that range and would be clipped: rescale the image to it, or save it as 8-bit",
            path,
        )
    out = np.empty(pixels.shape, np.uint8)
    for y in range(0, len(pixels), _ROWS):
        out[y : y + _ROWS] = np.rint(pixels[y : y + _ROWS].astype(np.float32) * np.float32(255 / top))
    return Image.fromarray(out)


def _upright(im: Image.Image) -> Image.Image:
    """``im`` turned as its EXIF orientation says (a copy only when it says to turn)."""
    if im.getexif().get(_ORIENTATION, 1) in (None, 1):
        return im
    return ImageOps.exif_transpose(im)


def _opaque(im: Image.Image) -> Image.Image:
    """``im`` with transparent pixels composited over :data:`BACKGROUND`; opaque images unchanged."""
    if im.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in im.info:
        return im
    rgba = im.convert("RGBA")
    out = Image.alpha_composite(Image.new("RGBA", im.size, (*BACKGROUND, 255)), rgba).convert("RGB")
    if _FULL_SIZE in im.info:
        out.info[_FULL_SIZE] = im.info[_FULL_SIZE]
    return out


def _reduced(im: Image.Image, input_size: int) -> Image.Image:
    """``im`` shrunk by whole factors per side, each side kept at least ``REDUCE_MARGIN * input_size``."""
    keep = REDUCE_MARGIN * input_size
    factors = (max(1, im.width // keep), max(1, im.height // keep))
    if factors == (1, 1):
        return im
    size = im.size
    if im.mode in ("1", "P"):  # reduce() takes neither: palette and bilevel images become their colours first
        im = im.convert("RGBA" if im.mode == "P" and "transparency" in im.info else "L" if im.mode == "1" else "RGB")
    reduced = im.reduce(factors)
    reduced.info[_FULL_SIZE] = size
    return reduced


@contextmanager
def open_image(
    path: str | os.PathLike | BinaryIO, max_pixels: int | None = None, *, input_size: int | None = None
) -> Iterator[Image.Image]:
    """The image at ``path`` (or in a binary file object), loaded, with 8-bit pixels (see the module docstring);
    refused when too large or too elongated; with ``input_size``, shrunk while decoding (see the module docstring).

    Raises:
        UnreadableImage: (a ``DataError``) larger than the pixel limit, too elongated, or pixels outside their range.
        Whatever PIL raises for a file it cannot read (``UnidentifiedImageError``, ``OSError``...).
    """
    limit, source = pixel_limit(max_pixels)
    with open(path, "rb") if isinstance(path, (str, os.PathLike)) else nullcontext(path) as f:
        with _pil_check_lifted():
            im = Image.open(f)
        with im:
            problem = size_problem(im.size, limit, source)
            if problem:  # from the header: nothing decoded yet
                raise UnreadableImage(problem, path)
            if input_size is not None and im.format == "JPEG":  # decoded at 1/2, 1/4 or 1/8 scale where that fits
                keep = REDUCE_MARGIN * input_size
                im.draft(im.mode, (min(im.width, keep), min(im.height, keep)))
            im.load()
            image = _to_8bit(_upright(im), path)
            if input_size is not None:
                image = _reduced(image, input_size)
            image = _opaque(image)
            if image is not im:
                im.close()  # the full-size pixels go now, not when the caller is done with the small ones
            yield image


def image_problem(path: str | os.PathLike, max_pixels: int | None = None) -> str | None:
    """Why ``path`` cannot be used as an image, from its header and PIL's structural check, or ``None``.

    Cheap: no pixel is decoded (a file damaged further in is found only by decoding it).
    """
    limit, source = pixel_limit(max_pixels)
    try:
        with _pil_check_lifted():
            im = Image.open(path)
        with im:
            size = im.size
            im.verify()
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... depending on the format
        return f"cannot be read as an image ({type(err).__name__})"
    return size_problem(size, limit, source)


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """``(C, H, W)`` pixels of ``im``, copied, in its own dtype: torchvision's ``pil_to_tensor``, here so that reading
    an image (``predict`` on a published weight) does not import torchvision, which costs as much as torch itself."""
    pixels = torch.from_numpy(np.array(im, copy=True))
    return pixels.view(im.size[1], im.size[0], -1).permute(2, 0, 1)


def thumbnail(im: Image.Image, size: int) -> torch.Tensor:
    """A uint8 RGB ``(3, h, w)`` copy of ``im`` at most ``size`` px on its longer side.

    Shrinks ``im`` itself (PIL's ``thumbnail``: reduce by an integer factor, then resample), so no second full-size
    image is made; take what else is needed from ``im`` first.
    """
    if _FULL_SIZE not in im.info:
        im.thumbnail((size, size))
    else:  # reduced by a different factor per side (see _reduced): drawn at the shape of the file as it is
        width, height = im.info[_FULL_SIZE]
        scale = min(size / width, size / height, 1.0)
        im = im.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BICUBIC)
    return pil_to_tensor(im.convert("RGB"))


def read_image(
    path: str | os.PathLike | BinaryIO,
    channels: int = 3,
    *,
    thumbnail_size: int | None = None,
    max_pixels: int | None = None,
    input_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode ``path`` once: a uint8 ``(C, H, W)`` tensor with 3 (RGB) or 1 (grey, ITU-R 601-2 luma) channels,
    and with ``thumbnail_size`` an RGB thumbnail of the file as it is (in colour for a grey network).

    At most two full-size copies of the image exist at once (a 12000 px RGB PNG read for a grey network: 0.6 GB);
    with ``input_size`` (the side the image is resized to next), one, and what is returned is at most
    ``2 * REDUCE_MARGIN * input_size`` on a side. See :func:`open_image` for the errors.
    """
    mode = "RGB" if channels == 3 else "L"
    with open_image(path, max_pixels, input_size=input_size) as im:
        if im.mode == mode:
            image = pil_to_tensor(im)  # a copy: made before im shrinks into the thumbnail
            return image, (thumbnail(im, thumbnail_size) if thumbnail_size else None)
        converted = im.convert(mode)
        small = thumbnail(im, thumbnail_size) if thumbnail_size else None
        im.close()  # the decoded file's pixels go before the converted ones are copied into a tensor
        return pil_to_tensor(converted), small


def read_file(
    path: str | os.PathLike | BinaryIO,
    channels: int,
    thumbnail_size: int | None = None,
    max_pixels: int | None = None,
    input_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`read_image` for a file a user gives (a path, or a binary file object such as ``io.BytesIO``): any
    failure to read it becomes :class:`UnreadableImage` with the reason alone, so callers can skip the file by name.
    With ``input_size`` (the network's), a large image is shrunk while it is read, so its size bounds nothing after
    decoding."""
    try:
        return read_image(path, channels, thumbnail_size=thumbnail_size, max_pixels=max_pixels, input_size=input_size)
    except UnreadableImage as err:
        raise UnreadableImage(err.reason) from None
    except UnidentifiedImageError:
        raise UnreadableImage("not an image (no format PIL can read)") from None
    except Exception as err:  # a damaged image: PIL raises OSError, ValueError, SyntaxError... depending on format
        raise UnreadableImage(f"cannot be decoded ({type(err).__name__}: {err})") from None
