from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emobench.data import cycle_to, load_images, synthetic_images
from emobench.errors import DataError


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("emotion,pixels,Usage\n" + "".join(f"0,{r},Training\n" for r in rows))
    return path


def test_synthetic_images_are_seeded() -> None:
    a, b = synthetic_images(3, seed=7), synthetic_images(3, seed=7)
    assert a.shape == (3, 48, 48) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, synthetic_images(3, seed=8))


def test_fer_csv(tmp_path: Path) -> None:
    pixels = np.arange(2304) % 256
    path = write_csv(tmp_path / "fer.csv", [" ".join(map(str, pixels))] * 3)
    images = load_images(path)
    assert images.shape == (3, 48, 48)
    assert images[0, 0, 5] == 5 and images[0, 47, 47] == 2303 % 256
    assert load_images(path, limit=2).shape == (2, 48, 48)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b\n1,2\n", "no 'pixels' column"),
        ("pixels\n1 2 3\n", "line 2 has 3 pixel values, expected 2304"),
        ("pixels\n" + " ".join(["x"] * 2304) + "\n", "non-integer"),
        ("pixels\n" + " ".join(["300"] * 2304) + "\n", "outside 0..255"),
        ("pixels\n", "no images found"),
    ],
)
def test_bad_csv(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_images(path)


def test_binary_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xff\xfe\x00\x81" * 100)
    with pytest.raises(DataError):
        load_images(path)


def test_image_folder(tmp_path: Path) -> None:
    for i in range(3):
        Image.fromarray(np.full((48, 48), i * 10, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    Image.fromarray(np.zeros((48, 48, 3), dtype=np.uint8)).save(tmp_path / "rgb.jpg")
    (tmp_path / "notes.txt").write_text("ignored")
    images = load_images(tmp_path)
    assert images.shape == (4, 48, 48)
    assert images[1, 0, 0] == 10


def test_image_folder_rejects_wrong_size(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match="64x64, expected 48x48"):
        load_images(tmp_path)


def test_missing_path() -> None:
    with pytest.raises(DataError, match="no such file"):
        load_images(Path("/definitely/not/here.csv"))


def test_cycle_to_repeats_images() -> None:
    images = synthetic_images(3)
    out = cycle_to(images, 7)
    assert out.shape == (7, 48, 48)
    assert np.array_equal(out[3], images[0]) and np.array_equal(out[6], images[0])
