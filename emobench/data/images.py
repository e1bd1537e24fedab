"""Input images: seeded synthetic 48x48 batches, FER2013-style CSV files and image folders.

Every loader returns a uint8 numpy array of shape (N, 48, 48).
"""

from __future__ import annotations

import csv
import io
import re
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emobench.errors import DataError
from emobench.files import file_kind, open_regular

IMAGE_SIZE = 48
PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".gif", ".tif", ".tiff"})
MAX_IMAGES = 100_000  # read at most this many images when the caller gives no limit
MAX_LINE_CHARS = 64 * 1024  # a FER2013 row is under 10 KB: 2304 values of up to 3 digits
MAX_IMAGE_PIXELS = 4096 * 4096  # larger headers are refused before decoding (a "bomb")
SIXTEEN_BIT_GRAY = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def synthetic_images(count: int, seed: int = 0) -> np.ndarray:
    """Seeded uniform-noise 48x48 grayscale images; the same seed gives the same bytes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)


def load_images(path: Path, limit: int | None = None) -> np.ndarray:
    """Read a FER2013-style CSV (a `pixels` column) or a folder of 48x48 image files.

    Only regular files and folders are read (no devices, FIFOs or sockets), and never more than
    `limit` images (MAX_IMAGES without one): a CSV is read line by line, each line and the
    whole read capped, so a huge or endless input fails with a DataError instead of filling
    memory.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"--data {path}: no such file or folder") from None
    except OSError as exc:
        raise DataError(f"--data {path}: cannot read ({exc.strerror or exc})") from None
    wanted = MAX_IMAGES if limit is None else min(limit, MAX_IMAGES)
    if stat.S_ISDIR(st.st_mode):
        images = _load_folder(path, wanted)
    elif not stat.S_ISREG(st.st_mode):
        raise DataError(
            f"--data {path}: is a {file_kind(st.st_mode)}; give a CSV file or a folder of images"
        )
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(
            f"--data {path}: is a single image; --data takes a FER2013-style CSV or a folder "
            "of 48x48 images (put the image in a folder)"
        )
    else:
        images = _load_csv(path, wanted)
    if len(images) == 0:
        raise DataError(f"--data {path}: no images found")
    return images


def input_images(data: str | None, seed: int, count: int) -> np.ndarray:
    """`count` images: from --data (cycled when it holds fewer), else seeded synthetic ones."""
    if data is None:
        return synthetic_images(count, seed)
    return cycle_to(load_images(Path(data), limit=count), count)


def cycle_to(images: np.ndarray, count: int) -> np.ndarray:
    """Repeat a set of images until there are `count` of them (for large batches)."""
    reps = -(-count // len(images))
    return np.concatenate([images] * reps)[:count] if reps > 1 else images[:count]


def _load_csv(path: Path, limit: int) -> np.ndarray:
    rows: list[np.ndarray] = []
    # utf-8-sig: a byte-order mark before the header is dropped, not read as part of `pixels`
    with open_regular(path, DataError, f"--data {path}") as raw:
        fh = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            reader = csv.DictReader(_bounded_lines(fh, path, limit))
            if reader.fieldnames is None or "pixels" not in reader.fieldnames:
                raise DataError(f"--data {path}: CSV has no 'pixels' column")
            for row in reader:
                rows.append(_parse_pixels(path, reader.line_num, row["pixels"] or ""))
                if len(rows) >= limit:
                    break
        except UnicodeDecodeError as exc:
            raise DataError(f"--data {path}: not a UTF-8 text CSV ({exc.reason})") from None
        except csv.Error as exc:
            raise DataError(f"--data {path}: malformed CSV ({exc})") from None
        except OSError as exc:
            raise DataError(f"--data {path}: cannot read ({exc.strerror or exc})") from None
    if not rows:
        return np.empty((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    return np.stack(rows)


def _bounded_lines(fh: io.TextIOWrapper, path: Path, rows: int) -> Iterator[str]:
    """The file's lines, each at most MAX_LINE_CHARS, and no more than a header and `rows`
    lines' worth of characters in all (blank lines count too)."""
    budget = MAX_LINE_CHARS * (rows + 1)
    while True:
        line = fh.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) > MAX_LINE_CHARS:
            raise DataError(
                f"--data {path}: a line longer than {MAX_LINE_CHARS} characters; "
                "not a FER2013-style CSV (one 48x48 image per line)"
            )
        budget -= len(line)
        if budget < 0:
            raise DataError(
                f"--data {path}: read {MAX_LINE_CHARS * (rows + 1) // 1024} KiB without "
                f"finding {rows} image rows"
            )
        yield line


_ASCII_INT = re.compile(r"[-+]?[0-9]+")


def _parse_pixels(path: Path, line_no: int, text: str) -> np.ndarray:
    parts = text.split()
    if len(parts) != PIXELS_PER_IMAGE:
        raise DataError(
            f"--data {path}: line {line_no} has {len(parts)} pixel values, "
            f"expected {PIXELS_PER_IMAGE} (48x48)"
        )
    # int() reads digits of every script ('٣' is 3) and underscores ('2_5'): only ASCII 0-9 count
    if not all(_ASCII_INT.fullmatch(p) for p in parts):
        raise DataError(f"--data {path}: line {line_no} has a non-integer pixel value")
    values = np.array([int(p) for p in parts], dtype=np.int64)
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"--data {path}: line {line_no} has pixel values outside 0..255")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def _load_folder(path: Path, limit: int) -> np.ndarray:
    try:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as exc:
        raise DataError(f"--data {path}: cannot list the folder ({exc.strerror or exc})") from None
    images = [_read_image(file) for file in files[:limit]]
    if not images:
        return np.empty((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    return np.stack(images)


def _read_image(file: Path) -> np.ndarray:
    """One 48x48 image as 8-bit gray; its size is checked from the header, before decoding."""
    from PIL import Image, UnidentifiedImageError

    with open_regular(file, DataError, f"--data {file}") as fh, warnings.catch_warnings():
        # a header claiming more than MAX_IMAGE_PIXELS is refused before any pixel is decoded
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS
        try:
            with Image.open(fh) as img:
                if img.size != (IMAGE_SIZE, IMAGE_SIZE):
                    raise DataError(
                        f"--data {file}: image is {img.size[0]}x{img.size[1]}, expected 48x48"
                    )
                return _to_gray8(file, img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise DataError(
                f"--data {file}: the image header claims more than {MAX_IMAGE_PIXELS:,} pixels "
                "(expected 48x48); refused before decoding"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"--data {file}: not a readable image ({exc})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _to_gray8(file: Path, img: Any) -> np.ndarray:
    """8-bit grayscale without silently changing the data: 16-bit gray is scaled (65535 ->
    255, rounded), colour is converted with PIL's luma; 32-bit and float images are refused."""
    if img.mode in SIXTEEN_BIT_GRAY:
        wide = np.asarray(img).astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    if img.mode in ("I", "F"):
        kind = "32-bit integer" if img.mode == "I" else "floating-point"
        raise DataError(
            f"--data {file}: a {kind} grayscale image; convert it to 8-bit (or 16-bit) first"
        )
    return np.asarray(img.convert("L"), dtype=np.uint8)
