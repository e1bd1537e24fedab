"""Labelled 48x48 data sets for fine-tuning: FER2013 CSVs and class-per-folder image trees, split
into train / validation / test.

Pixel parsing reuses `emobench.data.images`; this module adds labels, class names and splits.
"""

from __future__ import annotations

import csv
import hashlib
import io
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emobench.data.images import (
    IMAGE_SIZE,
    IMAGE_SUFFIXES,
    _bounded_lines,
    _parse_pixels,
    _read_image,
)
from emobench.errors import DataError
from emobench.files import file_kind, open_regular

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.1
TEST_FRACTION = 0.1
SPLIT_SEED = 0
MAX_LABELED_IMAGES = 1_000_000  # 2.3 GB of 48x48 pixels; FER2013 has 35,887


@dataclass(frozen=True)
class Split:
    name: str  # "train", "val" or "test"
    source: str  # where it came from: "Usage=Training", "train/", "stratified 80% of ..."
    images: np.ndarray  # uint8 (N, 48, 48)
    labels: np.ndarray  # int64 (N,)


@dataclass(frozen=True)
class LabeledData:
    path: str
    format: str  # "fer2013_csv" or "image_folder"
    class_names: list[str]
    train: Split
    val: Split  # used to select the best epoch
    test: Split  # the held-out final score
    split_method: str  # "given" (Usage column / train,val,test folders) or "stratified"
    split_seed: int | None  # the stratified split's seed; None when the splits were given

    def content_sha256(self) -> str:
        """The sha256 of what a fine-tune learns from: the class names and each split's
        pixels and labels (not the file's bytes or name: a copy or a re-encoding of the same
        images is the same data; another split seed is not)."""
        digest = hashlib.sha256()
        digest.update(repr(list(self.class_names)).encode())
        for split in (self.train, self.val, self.test):
            images = np.ascontiguousarray(split.images, dtype=np.uint8)
            digest.update(f"|{split.name}|{images.shape}|".encode())
            digest.update(images.tobytes())
            digest.update(np.ascontiguousarray(split.labels, dtype="<i8").tobytes())
        return digest.hexdigest()

    def summary(self) -> dict[str, object]:
        """What a report records about the data: no pixels."""
        return {
            "path": self.path,
            "format": self.format,
            "class_names": list(self.class_names),
            "split_method": self.split_method,
            "split_seed": self.split_seed,
            "selection_split": self.val.source,
            "score_split": self.test.source,
            "counts": {
                s.name: np.bincount(s.labels, minlength=len(self.class_names)).tolist()
                for s in (self.train, self.val, self.test)
            },
        }


def load_labeled(
    path: Path,
    seed: int = SPLIT_SEED,
    val_fraction: float = VAL_FRACTION,
    test_fraction: float = TEST_FRACTION,
) -> LabeledData:
    """Read a FER2013 CSV (`emotion`, `pixels`, optional `Usage`) or a folder of class folders
    (optionally under train/, val/, test/); without given splits, split stratified by `seed`.

    The same guards as `compare`'s loader (emobench.data.images): regular files and folders
    only, wherever they sit (a device, FIFO or socket is refused, never opened for a blocking
    read), CSV lines bounded, image headers checked before any pixel is decoded, 16-bit gray
    scaled and float images refused; at most MAX_LABELED_IMAGES images."""
    if check_source(path):
        return _load_tree(path, seed, val_fraction, test_fraction)
    return _load_fer_csv(path, seed, val_fraction, test_fraction)


def check_source(path: Path) -> bool:
    """DataError unless --data is a folder or a regular (non-image) file; whether it is a
    folder. Reads nothing, so a special file is refused before anything blocks on it."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"--data {path}: no such file or folder") from None
    except OSError as exc:
        raise DataError(f"--data {path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        return True
    if not stat.S_ISREG(st.st_mode):
        raise DataError(
            f"--data {path}: is a {file_kind(st.st_mode)}; give a FER2013 CSV file or a folder "
            "of class folders"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(
            f"--data {path}: is a single image; --data takes a FER2013 CSV or a folder with one "
            "sub-folder of 48x48 images per class"
        )
    return False


def _load_fer_csv(path: Path, seed: int, val_fraction: float, test_fraction: float) -> LabeledData:
    images: list[np.ndarray] = []
    labels: list[int] = []
    usages: list[str] = []
    try:
        with (
            open_regular(path, DataError, f"--data {path}") as raw,
            io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh,
        ):
            reader = csv.DictReader(_bounded_lines(fh, path, MAX_LABELED_IMAGES))
            fields = reader.fieldnames or []
            for column in ("emotion", "pixels"):
                if column not in fields:
                    raise DataError(f"--data {path}: CSV has no '{column}' column")
            has_usage = "Usage" in fields
            for line_no, row in enumerate(reader, start=2):
                if len(images) >= MAX_LABELED_IMAGES:
                    raise DataError(
                        f"--data {path}: more than {MAX_LABELED_IMAGES:,} images; "
                        "fine-tune on a subset"
                    )
                text = (row["emotion"] or "").strip()
                # ASCII digits only: int() also reads other scripts' digits ('\u0663' is 3)
                if not (text.isascii() and text.isdigit()) or int(text) >= len(FER2013_CLASSES):
                    raise DataError(
                        f"--data {path}: line {line_no} has emotion {text!r}, expected an "
                        f"integer 0..{len(FER2013_CLASSES) - 1}"
                    )
                if has_usage:
                    usage = (row["Usage"] or "").strip()
                    if usage not in FER2013_USAGE:
                        raise DataError(
                            f"--data {path}: line {line_no} has Usage {usage!r}, expected one "
                            f"of {', '.join(FER2013_USAGE)}"
                        )
                    usages.append(FER2013_USAGE[usage])
                images.append(_parse_pixels(path, line_no, row["pixels"] or ""))
                labels.append(int(text))
    except UnicodeDecodeError as exc:
        raise DataError(f"--data {path}: not a UTF-8 text CSV ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"--data {path}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise DataError(f"--data {path}: cannot read ({exc.strerror or exc})") from None
    if not images:
        raise DataError(f"--data {path}: no images found")
    x = np.stack(images)
    y = np.asarray(labels, dtype=np.int64)
    names = list(FER2013_CLASSES)
    if usages:
        where = np.asarray(usages)
        reverse = {v: k for k, v in FER2013_USAGE.items()}
        splits = [Split(s, f"Usage={reverse[s]}", x[where == s], y[where == s]) for s in SPLITS]
        data = LabeledData(
            str(path), "fer2013_csv", names, splits[0], splits[1], splits[2], "given", None
        )
    else:
        data = _stratified(str(path), "fer2013_csv", names, x, y, seed, val_fraction, test_fraction)
    _check(data, path)
    return data


def _subfolders(folder: Path) -> list[str]:
    """The names of folder's sub-folders, sorted."""
    try:
        return sorted(d.name for d in folder.iterdir() if d.is_dir())
    except OSError as exc:
        why = exc.strerror or exc
        raise DataError(f"--data {folder}: cannot list the folder ({why})") from None


def _load_tree(path: Path, seed: int, val_fraction: float, test_fraction: float) -> LabeledData:
    given = [path / s for s in SPLITS]
    if any(d.is_dir() for d in given):
        missing = [d for d in given if not d.is_dir()]
        if missing:
            raise DataError(f"--data {path}: has {SPLITS} folders but not {missing[0].name}/")
        names = _subfolders(given[0])
        if not names:
            raise DataError(f"--data {given[0]}: no class folders")
        splits = []
        budget = MAX_LABELED_IMAGES
        for d in given:
            extra = [c for c in _subfolders(d) if c not in names]
            if extra:
                raise DataError(f"--data {d / extra[0]}: class not in {given[0]}")
            x, y = _read_classes(d, names, budget)
            budget -= len(y)
            splits.append(Split(d.name, f"{d.name}/", x, y))
        data = LabeledData(
            str(path), "image_folder", names, splits[0], splits[1], splits[2], "given", None
        )
    else:
        names = _subfolders(path)
        if not names:
            raise DataError(f"--data {path}: no class folders (one sub-folder per class)")
        x, y = _read_classes(path, names, MAX_LABELED_IMAGES)
        data = _stratified(
            str(path), "image_folder", names, x, y, seed, val_fraction, test_fraction
        )
    _check(data, path)
    return data


def _read_classes(folder: Path, names: list[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Every image of each class folder, read as compare reads a folder (images._read_image):
    a FIFO or device named like an image is refused, a header is checked before decoding."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise DataError(f"--data {class_dir}: class folder missing")
        try:
            files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            raise DataError(
                f"--data {class_dir}: cannot list the folder ({exc.strerror or exc})"
            ) from None
        if not files:
            raise DataError(f"--data {class_dir}: class {name!r} has no images")
        if len(images) + len(files) > limit:
            raise DataError(
                f"--data {folder}: more than {MAX_LABELED_IMAGES:,} images; fine-tune on a subset"
            )
        for file in files:
            images.append(_read_image(file))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def stratified_indices(
    labels: np.ndarray, seed: int, val_fraction: float, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: shuffle with `seed`, take the test share, then the validation share."""
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(len(idx) * test_fraction)
        n_val = round(len(idx) * val_fraction)
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    return train, val, test


def _stratified(
    path: str,
    fmt: str,
    names: list[str],
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> LabeledData:
    train, val, test = stratified_indices(y, seed, val_fraction, test_fraction)
    pct = {
        "train": 1 - val_fraction - test_fraction,
        "val": val_fraction,
        "test": test_fraction,
    }
    splits = [
        Split(name, f"{name}: stratified {pct[name]:.0%} (seed {seed})", x[idx], y[idx])
        for name, idx in zip(SPLITS, (train, val, test), strict=True)
    ]
    return LabeledData(path, fmt, names, splits[0], splits[1], splits[2], "stratified", seed)


def _check(data: LabeledData, path: Path) -> None:
    for split in (data.train, data.val, data.test):
        if len(split.labels) == 0:
            raise DataError(f"--data {path}: the {split.name} split ({split.source}) has no images")
    present = np.bincount(data.train.labels, minlength=len(data.class_names))
    empty = [data.class_names[i] for i, n in enumerate(present) if n == 0]
    if empty:
        raise DataError(f"--data {path}: class {empty[0]!r} has no training images")


def synthetic_labeled(
    count: int, num_classes: int = len(FER2013_CLASSES), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A learnable stand-in for FER2013: per class a brightness level and a grating orientation,
    plus per-image brightness jitter and pixel noise. Labels cycle so every class is present."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % num_classes
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    angles = np.pi * labels / num_classes
    levels = 30.0 + 180.0 * labels / max(num_classes - 1, 1)
    phase = rng.uniform(0, 2 * np.pi, size=count)
    proj = np.cos(angles)[:, None, None] * xx + np.sin(angles)[:, None, None] * yy
    grating = 30.0 * np.sin(2 * np.pi * proj / 8.0 + phase[:, None, None])
    jitter = rng.uniform(-8, 8, size=count)[:, None, None]
    noise = rng.normal(0, 15, size=(count, IMAGE_SIZE, IMAGE_SIZE))
    pixels = levels[:, None, None] + jitter + grating + noise
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), labels


def write_fer_csv(
    path: Path, images: np.ndarray, labels: np.ndarray, usage: list[str] | None = None
) -> None:
    """Write images and labels as a FER2013-style CSV (with a Usage column when given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emotion", "pixels"] + (["Usage"] if usage is not None else []))
        for i, (img, label) in enumerate(zip(images, labels, strict=True)):
            row = [str(int(label)), " ".join(map(str, img.reshape(-1).tolist()))]
            writer.writerow(row + ([usage[i]] if usage is not None else []))


def write_image_folder(
    root: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str]
) -> None:
    """Write images as PNGs under root/<class name>/."""
    from PIL import Image

    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / class_names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode="L").save(folder / f"{i:05d}.png")
