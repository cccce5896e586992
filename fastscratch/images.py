"""An image of a handwritten digit as a row of MNIST, made the way the dataset was made.

MNIST's digits are grey levels, light on a dark background: each digit's
bounding box was scaled, keeping its aspect ratio, to fit a 20x20 box
(anti-aliased), then placed in a 28x28 image so that its centre of mass is
the image's centre, and the tutorial reads the pixels as ``X / 255``. A
network trained on MNIST has seen nothing else: a digit photographed or
drawn on a canvas of any size, dark on light, off-centre, reads as noise to
it until it is made the same way. :func:`read_digit` does that to a PNG or
JPEG file (any format Pillow reads), an open binary file, a ``PIL.Image`` or
an array:

1. Grey levels: colour by luma (ITU-R 601-2, as Pillow's ``L``); an image
   with transparency is laid over a background opposite to its opaque
   pixels (dark strokes over white, light strokes over black); EXIF
   orientation is applied; images longer than ``MAX_SIDE`` are first reduced
   by averaging blocks of pixels.
2. Background: the median of a border ring decides whether the digit is dark
   on light (inverted) or light on dark, unless ``background`` says which;
   the background's level, a smooth surface fitted to that ring (paper lit
   unevenly; on light paper the ink is taken relative to it), becomes 0, the
   strongest ink 1, and what stays under
   ``NOISE_FLOOR`` of it (paper grain, JPEG ringing) 0, as MNIST's background is.
3. The bounding box of the remaining ink, scaled (Lanczos, anti-aliased)
   so that its longer side is 20 pixels, its ink stretched again to 1.
4. Placed in 28x28 so that its centre of mass lands on pixel (14, 14) (row
   and column, counted from 0, where MNIST's centres of mass lie: 14.0 +/- 0.3),
   moved in whole pixels as far as the 28x28 frame allows.

The result is a float row of 784 values in [0, 1], what the tutorial feeds
its network. Every problem is a ``ValueError`` (``FileNotFoundError`` for a
missing file, ``TypeError`` for an argument of the wrong kind) naming the
argument and the file.
"""
import contextlib
import dataclasses
import math
import os

import numpy as np

SIDE = 28  # MNIST's image side
BOX = 20  # the side of the box each digit was scaled into
CENTRE = 14  # where MNIST's centres of mass lie (row and column index, from 0)
MAX_SIDE = 1024  # longer images are first reduced to at most this by block averages
MIN_SIDE = 8  # smaller images hold no digit with a background around it
MIN_DIGIT = 3  # a digit's longer side, in the image's pixels
MIN_CONTRAST = 0.1  # of the full grey range: weaker ink is no digit but noise on a blank image
NOISE_FLOOR = 0.2  # of the strongest ink: below it is background (paper grain, JPEG ringing, stray marks)
BORDER = 0.05  # the width of the ring whose median is the background, as a fraction of the shorter side
BACKGROUNDS = ("auto", "light", "dark")


@dataclasses.dataclass(frozen=True)
class Digit:
    """A digit read from an image.

    Attributes:
        row (ndarray): ``(784,)``, values in [0, 1]: the 28x28 image, row by row, as ``X / 255`` of MNIST.
        background (str): ``"light"`` (the image was dark on light, and was inverted) or ``"dark"``.
        box (tuple): ``(top, left, height, width)`` of the digit's bounding box in the image read, in its
            pixels after EXIF orientation (and after the reduction of images longer than ``MAX_SIDE``,
            whose factor is ``reduced``).
        reduced (int): the factor by which a large image was reduced first (1: not reduced).
    """
    row: np.ndarray
    background: str
    box: tuple
    reduced: int = 1

    @property
    def image(self):
        """The row as the 28x28 image."""
        return self.row.reshape(SIDE, SIDE)


def mnist_row(image, *, background="auto", dtype=np.float64):
    """``image`` as a row of MNIST: ``read_digit(image, ...).row``, a ``(784,)`` array in [0, 1].

    ``network.predict(mnist_row("seven.png"))`` is the class a network trained on MNIST sees in it.
    """
    return read_digit(image, background=background, dtype=dtype).row


def read_digit(image, *, background="auto", dtype=np.float64):
    """Read the digit in ``image`` as MNIST's digits were made (see the module's docstring); return a :class:`Digit`.

    Args:
        image: a path (``str`` or path-like) of an image file Pillow reads
            (PNG, JPEG, GIF, BMP, TIFF, WebP, ...; the first frame), a binary
            file object, a ``PIL.Image.Image``, or an array: ``(height,
            width)`` grey, ``(height, width, 3)`` RGB or ``(height, width, 4)``
            RGBA, of integers 0-255 (``uint16``: 0-65535), booleans, or floats
            in [0, 1].
        background: ``"auto"`` (from the image's border), ``"light"`` (a dark
            digit on a light background, which is inverted) or ``"dark"``.
        dtype: the row's floating-point type (that of the network it is for).
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {', '.join(map(repr, BACKGROUNDS))}, got {background!r}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dtype}")
    name = _name(image)
    grey, reduced = _grey(image, name)
    height, width = grey.shape
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"image {name}: {width}x{height} pixels is too small to hold a digit and its background "
                         f"(at least {MIN_SIDE}x{MIN_SIDE})")
    if not np.isfinite(grey).all():
        raise ValueError(f"image {name} holds NaN or infinite values")
    ink, background = _ink(grey, background, name)
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    top, left = rows[0], cols[0]
    box_height, box_width = rows[-1] - top + 1, cols[-1] - left + 1
    if max(box_height, box_width) < MIN_DIGIT:
        raise ValueError(f"image {name}: what stands out spans {box_width}x{box_height} pixels, too small for a "
                         f"digit (a speck, or a digit drawn at less than {MIN_DIGIT} pixels)")
    scaled = _scaled(ink[top:top + box_height, left:left + box_width])
    canvas = np.zeros((SIDE, SIDE))
    row_at, col_at = _placement(scaled)
    canvas[row_at:row_at + scaled.shape[0], col_at:col_at + scaled.shape[1]] = scaled
    return Digit(canvas.reshape(-1).astype(dtype), background,
                 (int(top), int(left), int(box_height), int(box_width)), reduced)


def _name(image):
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    name = getattr(image, "name", None) or getattr(image, "filename", None)
    return name if isinstance(name, str) and name else f"({type(image).__name__})"


def _grey(image, name):
    """``(grey, reduced)``: the image as a float array in [0, 1] (transparency laid over a background), and the
    factor by which it was reduced."""
    if isinstance(image, (np.ndarray, list, tuple)):
        return _reduced(*_array_grey(np.asarray(image), name))
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.exists(path):
            raise FileNotFoundError(f"image {path}: no such file")
        if os.path.isdir(path):
            raise ValueError(f"image {path} is a directory, not an image file")
    elif not (hasattr(image, "read") or _is_pil(image)):
        raise TypeError(f"image must be a path, a binary file, a PIL.Image or an array, got {type(image).__name__}")
    from PIL import Image, ImageOps, UnidentifiedImageError
    try:
        with contextlib.nullcontext(image) if _is_pil(image) else Image.open(image) as picture:
            picture.load()
            return _reduced(*_pil_grey(ImageOps.exif_transpose(picture)))
    except UnidentifiedImageError:
        raise ValueError(f"image {name} is not an image file Pillow can read (PNG, JPEG, GIF, BMP, TIFF, WebP, "
                         f"...)") from None
    except Image.DecompressionBombError as err:
        raise ValueError(f"image {name} is too large to read safely: {err}") from None
    except (OSError, SyntaxError, EOFError) as err:  # truncated or damaged data
        raise ValueError(f"image {name} cannot be read (truncated or damaged?): {err}") from None


def _is_pil(image):
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(image, Image.Image)


def _pil_grey(picture):
    """The grey levels and alpha (None when opaque) of a PIL image, floats in [0, 1]."""
    if picture.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # 16-bit greys (PNG's open as these)
        return np.asarray(picture, dtype=np.float64) / 65535, None
    if picture.mode == "F":
        return np.asarray(picture, dtype=np.float64), None
    if picture.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
            picture.mode == "P" and "transparency" in picture.info) or (
            picture.mode in ("L", "RGB") and "transparency" in picture.info):
        rgba = np.asarray(picture.convert("RGBA"), dtype=np.float64) / 255
        return _luma(rgba[..., :3]), rgba[..., 3]
    return np.asarray(picture.convert("L"), dtype=np.float64) / 255, None


def _luma(rgb):
    """ITU-R 601-2 luma, Pillow's conversion to ``L``."""
    return rgb @ np.array([299, 587, 114]) / 1000


def _array_grey(array, name):
    """The grey levels and alpha (or None) of an array image, floats in [0, 1]."""
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"image must be an array of numbers, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        channels = array.shape[2]
    elif array.ndim == 2:
        channels = 0
    else:
        hint = " (a flat MNIST row: pass row.reshape(28, 28))" if array.ndim == 1 else ""
        raise ValueError(f"image must be (height, width) grey, (height, width, 3) RGB or (height, width, 4) RGBA; "
                         f"got shape {array.shape}{hint}")
    if array.size == 0:
        raise ValueError(f"image is empty: shape {array.shape}")
    if array.dtype == bool:
        values = array.astype(np.float64)
    elif np.issubdtype(array.dtype, np.integer):
        top = 65535 if array.dtype == np.uint16 else 255
        low, high = array.min(), array.max()
        if low < 0 or high > top:
            raise ValueError(f"image of {array.dtype} must hold values 0 to {top}, got {low} to {high}")
        values = array.astype(np.float64) / top
    else:
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError("image holds NaN or infinite values")
        low, high = values.min(), values.max()
        if low < 0 or high > 1:
            raise ValueError(f"image of floats must hold values in [0, 1], got {low:g} to {high:g} "
                             f"(0-255 values: divide by 255, or pass them as uint8)")
    if channels == 0:
        return values, None
    if channels == 1:
        return values[..., 0], None
    grey = _luma(values[..., :3])
    return grey, values[..., 3] if channels == 4 else None


def _reduced(grey, alpha):
    """Lay ``grey`` over a background where ``alpha`` says it is transparent; reduce it to ``MAX_SIDE``."""
    if alpha is not None and alpha.min() < 1:
        ring = _ring(grey.shape)
        opaque = alpha >= 0.5
        if np.median(alpha[ring]) >= 0.5:  # an opaque background with holes: the holes are background
            under = float(np.median(grey[ring & opaque]))
        else:  # strokes on a transparent canvas: dark ones over white, light ones over black
            under = 1.0 if opaque.any() and grey[opaque].mean() < 0.5 else 0.0
        grey = alpha * grey + (1 - alpha) * under
    factor = math.ceil(max(grey.shape) / MAX_SIDE)
    if factor > 1:  # the mean of each factor x factor block (the last partial ones dropped)
        height, width = grey.shape[0] // factor, grey.shape[1] // factor
        grey = grey[:height * factor, :width * factor].reshape(height, factor, width, factor).mean(axis=(1, 3))
    return grey, factor


def _ink(grey, background, name):
    """``(ink, background)``: 0 for the background, 1 for the strongest ink, 0 below ``NOISE_FLOOR``."""
    ring = _ring(grey.shape)
    if background == "auto":
        background = "light" if np.median(grey[ring]) >= 0.5 else "dark"
    level = _background_level(grey, ring)
    # Light paper: the ink's darkness relative to the light that falls on it there (a photo is light x paper).
    # A dark background is near 0, where a ratio means nothing: the ink's excess over it (and a dark image
    # forced to be read as light paper is a difference, not a ratio by a level of 0).
    ink = (level - grey) / np.maximum(level, 0.05) if background == "light" else grey - level
    contrast = float(ink.max())
    if contrast < MIN_CONTRAST:
        said = "" if background == "auto" else f" (background={background!r} was given)"
        raise ValueError(f"image {name} is blank: nothing stands out from its {background} background"
                         f"{said}")
    ink = ink / contrast
    ink[ink < NOISE_FLOOR] = 0
    return ink, background


def _ring(shape):
    """The border of an image of ``shape``, ``BORDER`` of its shorter side wide (at least a pixel), as a mask."""
    ring = np.zeros(shape, dtype=bool)
    width = max(1, round(BORDER * min(shape)))
    ring[:width], ring[-width:], ring[:, :width], ring[:, -width:] = True, True, True, True
    return ring


def _background_level(grey, ring):
    """The background's grey level at every pixel: the surface ``a + b x + c y + d x y`` fitted to the ``ring``
    of border pixels (least squares), then again without the pixels far from that fit (ink that crosses the
    border), so that paper lit unevenly, as in a photo, is background everywhere."""
    rows, cols = np.nonzero(ring)
    height, width = grey.shape

    def terms(y, x):
        y, x = y / height - 0.5, x / width - 0.5
        return np.stack([np.ones_like(x), x, y, x * y], axis=-1)

    design, values = terms(rows, cols), grey[ring]
    fit = np.linalg.lstsq(design, values, rcond=None)[0]
    residual = np.abs(values - design @ fit)
    keep = residual <= max(3 * 1.4826 * np.median(residual), 0.02)
    fit = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
    return terms(*np.indices(grey.shape, dtype=np.float64)) @ fit


def _scaled(crop):
    """The digit's box scaled so that its longer side is ``BOX``, keeping the aspect ratio, stretched to 1."""
    from PIL import Image
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != (width, height):
        crop = np.asarray(Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS),
                          dtype=np.float64)
    crop = np.clip(crop, 0, None)  # Lanczos rings below zero beside strong edges
    return np.minimum(crop / crop.max(), 1.0)


def _placement(scaled):
    """The (row, column) at which ``scaled`` goes in the 28x28 image: its centre of mass on (14, 14), in whole
    pixels, the whole box kept inside."""
    height, width = scaled.shape
    mass = scaled.sum()
    centre_row = (scaled.sum(axis=1) @ np.arange(height)) / mass
    centre_col = (scaled.sum(axis=0) @ np.arange(width)) / mass
    row = min(max(round(CENTRE - centre_row), 0), SIDE - height)
    col = min(max(round(CENTRE - centre_col), 0), SIDE - width)
    return row, col
