"""Input images: seeded synthetic 48x48 batches, FER2013-style CSV files and image folders.

Every loader returns a uint8 numpy array of shape (N, 48, 48).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from emobench.errors import DataError

IMAGE_SIZE = 48
PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".gif", ".tif", ".tiff"})


def synthetic_images(count: int, seed: int = 0) -> np.ndarray:
    """Seeded uniform-noise 48x48 grayscale images; the same seed gives the same bytes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)


def load_images(path: Path, limit: int | None = None) -> np.ndarray:
    """Read a FER2013-style CSV (a `pixels` column) or a folder of 48x48 image files."""
    if not path.exists():
        raise DataError(f"--data {path}: no such file or folder")
    images = _load_folder(path, limit) if path.is_dir() else _load_csv(path, limit)
    if len(images) == 0:
        raise DataError(f"--data {path}: no images found")
    return images


def cycle_to(images: np.ndarray, count: int) -> np.ndarray:
    """Repeat a set of images until there are `count` of them (for large batches)."""
    reps = -(-count // len(images))
    return np.concatenate([images] * reps)[:count] if reps > 1 else images[:count]


def _load_csv(path: Path, limit: int | None) -> np.ndarray:
    rows: list[np.ndarray] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "pixels" not in reader.fieldnames:
                raise DataError(f"--data {path}: CSV has no 'pixels' column")
            for line_no, row in enumerate(reader, start=2):
                rows.append(_parse_pixels(path, line_no, row["pixels"] or ""))
                if limit is not None and len(rows) >= limit:
                    break
    except UnicodeDecodeError as exc:
        raise DataError(f"--data {path}: not a UTF-8 text CSV ({exc.reason})") from exc
    except csv.Error as exc:
        raise DataError(f"--data {path}: malformed CSV ({exc})") from exc
    if not rows:
        return np.empty((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    return np.stack(rows)


def _parse_pixels(path: Path, line_no: int, text: str) -> np.ndarray:
    parts = text.split()
    if len(parts) != PIXELS_PER_IMAGE:
        raise DataError(
            f"--data {path}: line {line_no} has {len(parts)} pixel values, "
            f"expected {PIXELS_PER_IMAGE} (48x48)"
        )
    try:
        values = np.array([int(p) for p in parts], dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"--data {path}: line {line_no} has a non-integer pixel value") from exc
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"--data {path}: line {line_no} has pixel values outside 0..255")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def _load_folder(path: Path, limit: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        files = files[:limit]
    images: list[np.ndarray] = []
    for file in files:
        try:
            with Image.open(file) as img:
                gray = img.convert("L")
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"--data {file}: not a readable image ({exc})") from exc
        if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(
                f"--data {file}: image is {gray.size[0]}x{gray.size[1]}, expected 48x48"
            )
        images.append(np.asarray(gray, dtype=np.uint8))
    if not images:
        return np.empty((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    return np.stack(images)
