"""Labelled 48x48 data sets for fine-tuning: FER2013 CSVs and class-per-folder image trees, split
into train / validation / test.

Pixel parsing reuses `emobench.data.images`; this module adds labels, class names and splits.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emobench.data.images import IMAGE_SIZE, IMAGE_SUFFIXES, _parse_pixels
from emobench.errors import DataError

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.1
TEST_FRACTION = 0.1
SPLIT_SEED = 0


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
    (optionally under train/, val/, test/); without given splits, split stratified by `seed`."""
    if not path.exists():
        raise DataError(f"--data {path}: no such file or folder")
    if path.is_dir():
        return _load_tree(path, seed, val_fraction, test_fraction)
    return _load_fer_csv(path, seed, val_fraction, test_fraction)


def _load_fer_csv(path: Path, seed: int, val_fraction: float, test_fraction: float) -> LabeledData:
    images: list[np.ndarray] = []
    labels: list[int] = []
    usages: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            for column in ("emotion", "pixels"):
                if column not in fields:
                    raise DataError(f"--data {path}: CSV has no '{column}' column")
            has_usage = "Usage" in fields
            for line_no, row in enumerate(reader, start=2):
                text = (row["emotion"] or "").strip()
                if not text.isdigit() or int(text) >= len(FER2013_CLASSES):
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
        raise DataError(f"--data {path}: not a UTF-8 text CSV ({exc.reason})") from exc
    except csv.Error as exc:
        raise DataError(f"--data {path}: malformed CSV ({exc})") from exc
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


def _load_tree(path: Path, seed: int, val_fraction: float, test_fraction: float) -> LabeledData:
    given = [path / s for s in SPLITS]
    if any(d.is_dir() for d in given):
        missing = [d for d in given if not d.is_dir()]
        if missing:
            raise DataError(f"--data {path}: has {SPLITS} folders but not {missing[0].name}/")
        names = sorted(d.name for d in given[0].iterdir() if d.is_dir())
        if not names:
            raise DataError(f"--data {given[0]}: no class folders")
        splits = []
        for d in given:
            extra = sorted(c.name for c in d.iterdir() if c.is_dir() and c.name not in names)
            if extra:
                raise DataError(f"--data {d / extra[0]}: class not in {given[0]}")
            x, y = _read_classes(d, names)
            splits.append(Split(d.name, f"{d.name}/", x, y))
        data = LabeledData(
            str(path), "image_folder", names, splits[0], splits[1], splits[2], "given", None
        )
    else:
        names = sorted(d.name for d in path.iterdir() if d.is_dir())
        if not names:
            raise DataError(f"--data {path}: no class folders (one sub-folder per class)")
        x, y = _read_classes(path, names)
        data = _stratified(
            str(path), "image_folder", names, x, y, seed, val_fraction, test_fraction
        )
    _check(data, path)
    return data


def _read_classes(folder: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise DataError(f"--data {class_dir}: class folder missing")
        files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"--data {class_dir}: class {name!r} has no images")
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
