"""The torch Pipeline: both preprocessing paths agree, gray becomes three normalised channels,
end to end gives logits."""

from __future__ import annotations

import pytest
import torch

from emobench.data.images import synthetic_images
from emobench.models import build_model
from emobench.runtimes.torch import Pipeline

# PIL resizes 8-bit images in fixed point and rounds to uint8: at most one gray level apart,
# i.e. 1/255 before normalising by std >= 0.224
PATH_TOLERANCE = 1 / 255 / 0.224 + 1e-4


@pytest.fixture(scope="module")
def images():
    return synthetic_images(6, seed=3)


@pytest.mark.parametrize(("pipeline", "size"), [("upscale224", 224), ("direct48", 48)])
def test_both_preprocessing_paths_agree(images, pipeline: str, size: int) -> None:
    pipe = Pipeline(pipeline, build_model("resnet18", pipeline), torch.device("cpu"))
    per_image = pipe.preprocess_per_image(images)
    batched = pipe.preprocess_batched(torch.from_numpy(images))
    assert per_image.shape == batched.shape == (6, 3, size, size)
    assert batched.dtype == torch.float32
    diff = (per_image - batched).abs().max().item()
    assert diff <= PATH_TOLERANCE
    assert (
        per_image - batched
    ).abs().mean().item() < PATH_TOLERANCE / 2  # rounding, not a shifted grid
    if pipeline == "direct48":
        assert diff < 1e-5  # no resize: the paths must agree to float precision


def test_gray_becomes_three_identical_normalised_channels(images) -> None:
    pipe = Pipeline("direct48", build_model("resnet18", "direct48"), torch.device("cpu"))
    x = pipe.preprocess_batched(torch.from_numpy(images[:1]))
    raw = torch.from_numpy(images[0]).float() / 255
    for c, (mean, std) in enumerate([(0.485, 0.229), (0.456, 0.224), (0.406, 0.225)]):
        torch.testing.assert_close(x[0, c], (raw - mean) / std)


def test_end_to_end_gives_logits(images) -> None:
    pipe = Pipeline(
        "direct48", build_model("vgg16", "direct48", num_classes=7), torch.device("cpu")
    )
    out = pipe.end_to_end(torch.from_numpy(images))
    assert out.shape == (6, 7)
    assert not pipe.model.training
