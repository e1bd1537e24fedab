"""Labelled data sets for fine-tuning: FER2013 CSV usages, class folders, stratified splits, bad
files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emobench.data.labeled import (
    FER2013_CLASSES,
    load_labeled,
    synthetic_labeled,
    write_image_folder,
)
from emobench.errors import DataError
from tests.factories import PIX, csv_file


def test_fer_csv_usage_names_the_splits(fer_csv: Path) -> None:
    data = load_labeled(fer_csv)
    assert data.class_names == list(FER2013_CLASSES)
    assert (len(data.train.labels), len(data.val.labels), len(data.test.labels)) == (196, 42, 42)
    assert data.val.source == "Usage=PublicTest" and data.test.source == "Usage=PrivateTest"
    assert data.split_method == "given" and data.split_seed is None
    _, labels = synthetic_labeled(280, seed=3)
    assert data.test.labels.tolist() == labels[238:].tolist()


def test_folder_without_splits_is_split_stratified_and_seeded(tmp_path: Path) -> None:
    images, labels = synthetic_labeled(140, seed=4)  # 20 per class
    names = ["a", "b", "c", "d", "e", "f", "g"]
    write_image_folder(tmp_path, images, labels, names)
    data = load_labeled(tmp_path, seed=5)
    assert data.class_names == names and data.split_method == "stratified"
    assert data.split_seed == 5
    counts = data.summary()["counts"]
    assert counts["test"] == counts["val"] == [2] * 7  # type: ignore[index]
    assert counts["train"] == [16] * 7  # type: ignore[index]
    again = load_labeled(tmp_path, seed=5)
    assert np.array_equal(again.test.images, data.test.images)


def test_folder_with_given_splits(tmp_path: Path, synthetic: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = synthetic
    names = list(FER2013_CLASSES)
    for split, sl in (
        ("train", slice(0, 140)),
        ("val", slice(140, 210)),
        ("test", slice(210, 280)),
    ):
        write_image_folder(tmp_path / split, images[sl], labels[sl], names)
    data = load_labeled(tmp_path)
    assert data.split_method == "given" and data.test.source == "test/"
    assert len(data.test.labels) == 70
    assert data.class_names == sorted(names)


@pytest.mark.parametrize(
    ("rows", "header", "needle"),
    [
        ([f"9,{PIX}"], "emotion,pixels", "line 2 has emotion '9'"),
        ([f"x,{PIX}"], "emotion,pixels", "line 2 has emotion 'x'"),
        ([f"0,{' '.join(['7'] * 100)}"], "emotion,pixels", "line 2 has 100 pixel values"),
        ([f"0,{PIX},Training"], "emotion,pixels,Usage", "the val split (Usage=PublicTest)"),
        ([f"0,{PIX},Bogus"], "emotion,pixels,Usage", "line 2 has Usage 'Bogus'"),
        ([f"{i % 6},{PIX}" for i in range(60)], "emotion,pixels", "class 'neutral'"),
        ([PIX], "pixels", "no 'emotion' column"),
    ],
)
def test_bad_csv_is_one_data_error_naming_the_row(
    tmp_path: Path, rows: list[str], header: str, needle: str
) -> None:
    with pytest.raises(DataError) as err:
        load_labeled(csv_file(tmp_path / "bad.csv", rows, header))
    assert needle in str(err.value) and "bad.csv" in str(err.value)


def test_wrong_size_image_and_empty_class_name_the_file(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("L", (48, 48)).save(tmp_path / name / "ok.png")
    Image.new("L", (64, 48)).save(tmp_path / "b" / "big.png")
    with pytest.raises(DataError, match=r"big\.png: image is 64x48, expected 48x48"):
        load_labeled(tmp_path)
    (tmp_path / "b" / "big.png").unlink()
    (tmp_path / "c").mkdir()
    with pytest.raises(DataError, match="class 'c' has no images"):
        load_labeled(tmp_path)


# -- the guards compare's loader has (issue #26) -------------------------------------------------


def _two_classes(root: Path) -> None:
    from PIL import Image

    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(10):
            Image.new("L", (48, 48), color=20 * i).save(root / name / f"{i}.png")


@pytest.mark.parametrize("digit", ["\u0663", "\u00b2", "\uff13"])
def test_a_label_in_another_script_is_refused(tmp_path: Path, digit: str) -> None:
    """Arabic-Indic 3 is read as 3 by int(), superscript 2 crashed it: both are refused."""
    path = tmp_path / "bad.csv"
    path.write_text(f"emotion,pixels\n{digit},{PIX}\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"line 2 has emotion '{digit}', expected an integer 0..6"):
        load_labeled(path)


def test_sixteen_bit_images_are_scaled_as_compare_scales_them(tmp_path: Path) -> None:
    from PIL import Image

    from emobench.data.images import load_images

    _two_classes(tmp_path / "tree")
    wide = np.full((48, 48), 65535, dtype=np.uint16)
    wide[0, :3] = (0, 257, 32768)
    Image.fromarray(wide).save(tmp_path / "tree" / "a" / "wide.png")
    data = load_labeled(tmp_path / "tree", seed=0, val_fraction=0.2, test_fraction=0.2)
    every = np.concatenate([data.train.images, data.val.images, data.test.images])
    scaled = [img for img in every if img[0, 0] == 0 and img[0, 1] == 1]
    assert len(scaled) == 1
    assert scaled[0][0, :4].tolist() == [0, 1, 128, 255]
    (tmp_path / "flat").mkdir()
    Image.fromarray(wide).save(tmp_path / "flat" / "wide.png")
    assert np.array_equal(load_images(tmp_path / "flat")[0], scaled[0])


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        ("fifo", "x.png: is a FIFO (named pipe), expected a regular file"),
        ("bomb", "claims more than 16,777,216 pixels (expected 48x48); refused before decoding"),
        ("float", "f.tif: a floating-point grayscale image; convert it to 8-bit"),
    ],
)
def test_a_class_folder_is_read_with_compares_guards(
    tmp_path: Path, make: str, needle: str
) -> None:
    import os

    from PIL import Image

    from tests.bad_input_base import png_header

    _two_classes(tmp_path)
    if make == "fifo":
        os.mkfifo(tmp_path / "b" / "x.png")  # the old loader blocked on it for ever
    elif make == "bomb":
        (tmp_path / "b" / "big.png").write_bytes(png_header(20_000, 20_000))
    else:
        Image.fromarray(np.zeros((48, 48), np.float32), mode="F").save(tmp_path / "b" / "f.tif")
    with pytest.raises(DataError) as err:
        load_labeled(tmp_path)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/dev/zero", "--data /dev/zero: is a character device"),
        ("missing.csv", "no such file or folder"),
        ("one.png", "is a single image"),
    ],
)
def test_data_that_is_not_a_csv_or_folder_is_refused_before_reading(
    tmp_path: Path, path: str, needle: str
) -> None:
    (tmp_path / "one.png").write_bytes(b"\x89PNG")
    with pytest.raises(DataError, match=needle):
        load_labeled(tmp_path / path if not path.startswith("/") else Path(path))


def test_a_csv_line_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("emotion,pixels\n0," + "1 " * 50_000 + "\n")
    with pytest.raises(DataError, match="a line longer than 65536 characters"):
        load_labeled(path)


def test_the_image_count_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emobench.data import labeled

    monkeypatch.setattr(labeled, "MAX_LABELED_IMAGES", 3)
    rows = [f"{i % 7},{PIX}" for i in range(4)]
    with pytest.raises(DataError, match="more than 3 images"):
        load_labeled(csv_file(tmp_path / "many.csv", rows))
    _two_classes(tmp_path / "tree")
    with pytest.raises(DataError, match="more than 3 images"):
        load_labeled(tmp_path / "tree")
