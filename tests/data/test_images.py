"""Input images: seeded synthetic batches, FER2013-style CSVs and image folders, and every bad file
refused with one clear error before it is read whole."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emobench.data.images import MAX_LINE_CHARS, cycle_to, load_images, synthetic_images
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
        # int() reads other scripts' digits and underscores: neither is a pixel value
        ("pixels\n" + " ".join(["\u0663"] * 2304) + "\n", "non-integer"),
        ("pixels\n" + " ".join(["1_0"] * 2304) + "\n", "non-integer"),
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


# -- issue #13: only regular files, bounded reads, no silent changes to the pixels -----------


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_devices_and_fifos_are_refused_unread(tmp_path: Path, special: str) -> None:
    path = Path(special) if special.startswith("/") else tmp_path / "fer.csv"
    if special == "fifo":
        os.mkfifo(path)
    with pytest.raises(DataError, match=r"is a (character device|FIFO)"):
        load_images(path, limit=4)


def test_a_fifo_among_the_images_is_refused_unread(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"a\.png: is a FIFO"):
        load_images(tmp_path)


def test_csv_reads_stop_at_the_limit_and_cap_lines(tmp_path: Path) -> None:
    row = " ".join(["7"] * 2304)
    path = write_csv(tmp_path / "fer.csv", [row] * 5 + ["not read"])
    assert load_images(path, limit=5).shape == (5, 48, 48)  # the bad 6th row is never parsed
    long = tmp_path / "long.csv"
    long.write_text("pixels\n" + "1" * (MAX_LINE_CHARS + 10))
    with pytest.raises(DataError, match="a line longer than"):
        load_images(long, limit=2)
    blank = tmp_path / "blank.csv"
    blank.write_text("pixels\n" + "\n" * (MAX_LINE_CHARS * 4))
    with pytest.raises(DataError, match="without finding 2 image rows"):
        load_images(blank, limit=2)


def test_unreadable_file_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_csv(tmp_path / "fer.csv", [" ".join(["7"] * 2304)])
    real_open = os.open

    def denied(file, flags, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(13, "Permission denied")
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(DataError, match="cannot open \\(Permission denied\\)"):
        load_images(path)


def test_utf8_bom_before_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfpixels\n" + (" ".join(["9"] * 2304) + "\n").encode())
    images = load_images(path)
    assert images.shape == (1, 48, 48) and int(images.max()) == 9


def test_a_single_image_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    Image.fromarray(np.zeros((48, 48), dtype=np.uint8)).save(path)
    with pytest.raises(DataError, match="is a single image; --data takes a FER2013-style CSV"):
        load_images(path)


def test_huge_image_header_is_refused_before_decoding(tmp_path: Path) -> None:
    from tests.bad_inputs import png_header

    (tmp_path / "bomb.png").write_bytes(png_header(20_000, 20_000))
    with pytest.raises(DataError, match="refused before decoding"):
        load_images(tmp_path)
    (tmp_path / "bomb.png").write_bytes(png_header(64, 48))  # within the cap: size message
    with pytest.raises(DataError, match="image is 64x48, expected 48x48"):
        load_images(tmp_path)


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    wide = np.zeros((48, 48), dtype=np.uint16)
    wide[0, :4] = [0, 257, 32896, 65535]  # 0, 1, 128 and 255 on the 8-bit scale
    wide[1:, :] = 40000
    Image.fromarray(wide).save(tmp_path / "a.png")
    (image,) = load_images(tmp_path)
    assert list(image[0, :4]) == [0, 1, 128, 255]
    assert int(image[5, 5]) == round(40000 * 255 / 65535)
    assert (image == 255).mean() < 0.01  # clipping turned 99.6% of such pixels into 255


def test_32_bit_gray_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.full((48, 48), 70000, dtype=np.int32)).save(tmp_path / "a.tif")
    with pytest.raises(DataError, match="32-bit integer grayscale"):
        load_images(tmp_path)
