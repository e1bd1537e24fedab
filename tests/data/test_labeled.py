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
