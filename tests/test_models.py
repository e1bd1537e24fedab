from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

from emobench.errors import UsageError, WeightsUnavailable
from emobench.models import BACKBONES, build_model
from emobench.models.transfer import sum_pool_kernel
from tests.conftest import trust_checkpoint, write_fake_checkpoint


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize(("pipeline", "size"), [("upscale224", 224), ("direct48", 48)])
def test_output_shape(backbone: str, pipeline: str, size: int) -> None:
    model = build_model(backbone, pipeline, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, size, size))
    assert out.shape == (2, 5)
    assert model.input_size == size


def test_upscale224_replaces_only_last_layer() -> None:
    import torchvision

    reference = n_params(torchvision.models.vgg16())
    model = build_model("vgg16", "upscale224", num_classes=7)
    assert n_params(model) == reference - (4096 * 1000 + 1000) + (4096 * 7 + 7)
    assert n_params(model) == 134_289_223


def test_direct48_vgg16_parameter_count() -> None:
    import torchvision

    tv = torchvision.models.vgg16()
    conv_blocks_1_to_4 = n_params(tv.features[:24])
    head = (512 * 1024 + 1024) + (1024 * 256 + 256) + (256 * 7 + 7)
    model = build_model("vgg16", "direct48")
    assert n_params(model) == conv_blocks_1_to_4 + head == 8_424_775


def test_direct48_resnet18_structure() -> None:
    model = build_model("resnet18", "direct48")
    conv1 = model.backbone.conv1
    assert (conv1.kernel_size, conv1.stride, conv1.in_channels, conv1.bias) == (
        (3, 3),
        (1, 1),
        3,
        None,
    )
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 256), (256, 7)]


@pytest.mark.parametrize(
    ("backbone", "pipeline", "size", "upto"),
    [
        ("vgg16", "direct48", 48, lambda m: m.backbone.features),
        ("vgg19", "direct48", 48, lambda m: m.backbone.features),
        ("resnet18", "direct48", 48, lambda m: m.backbone.layer4),
        ("resnet18", "upscale224", 224, lambda m: m.backbone.layer4),
    ],
)
def test_feature_map_matches_reality(backbone: str, pipeline: str, size: int, upto) -> None:
    model = build_model(backbone, pipeline).eval()
    seen: list[tuple[int, ...]] = []
    upto(model).register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape)))
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    assert seen[0][-2:] == model.feature_map


def test_unknown_backbone_and_pipeline() -> None:
    with pytest.raises(UsageError, match="unknown backbone 'alexnet'"):
        build_model("alexnet", "direct48")
    with pytest.raises(UsageError, match="unknown pipeline"):
        build_model("vgg16", "direct64")


def test_sum_pool_kernel_preserves_filter_sums() -> None:
    w = torch.randn(64, 3, 7, 7)
    small = sum_pool_kernel(w)
    assert small.shape == (64, 3, 3, 3)
    torch.testing.assert_close(small.sum(dim=(2, 3)), w.sum(dim=(2, 3)), rtol=1e-5, atol=1e-5)
    # centre cell = the central 3x3 block of the 7x7 kernel (rows/cols 2..4)
    torch.testing.assert_close(small[:, :, 1, 1], w[:, :, 2:5, 2:5].sum(dim=(2, 3)))


def test_direct48_resnet18_copies_pretrained_weights(pretrained_resnet18) -> None:
    src = pretrained_resnet18
    model = build_model("resnet18", "direct48", pretrained=True)
    transfer = model.transfer
    assert transfer is not None and transfer.source == "ResNet18_Weights.IMAGENET1K_V1"
    state = model.state_dict()
    for key in transfer.copied:
        torch.testing.assert_close(state[key], src[key.removeprefix("backbone.")], rtol=0, atol=0)
    # BN statistics travel with the weights
    assert "backbone.bn1.running_mean" in transfer.copied
    assert "backbone.layer4.1.bn2.running_var" in transfer.copied
    # the stem is derived from the 7x7 kernel by the documented rule
    assert list(transfer.derived) == ["backbone.conv1.weight"]
    torch.testing.assert_close(state["backbone.conv1.weight"], sum_pool_kernel(src["conv1.weight"]))
    assert set(transfer.fresh) == {k for k in state if k.startswith("head.")}
    assert len(transfer.copied) + 1 + len(transfer.fresh) == len(state)


def test_upscale224_pretrained_loads_through_weights_api(pretrained_resnet18) -> None:
    model = build_model("resnet18", "upscale224", pretrained=True)
    torch.testing.assert_close(
        model.state_dict()["backbone.conv1.weight"], pretrained_resnet18["conv1.weight"]
    )
    assert model.transfer is not None
    assert set(model.transfer.fresh) == {"head.weight", "head.bias"}


@pytest.mark.slow
def test_direct48_vgg16_copies_first_conv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_fake_checkpoint(tmp_path, "vgg16")
    trust_checkpoint(monkeypatch, tmp_path, "vgg16")
    model = build_model("vgg16", "direct48", pretrained=True)
    assert model.transfer is not None
    state = model.state_dict()
    # the original write-up skipped the first conv; every conv of blocks 1-4 must be copied
    expected = {f"backbone.{k}" for k in src if k.startswith("features.")}
    expected = {k for k in expected if int(k.split(".")[2]) < 24}
    assert set(model.transfer.copied) == expected
    torch.testing.assert_close(state["backbone.features.0.weight"], src["features.0.weight"])
    torch.testing.assert_close(state["backbone.features.21.bias"], src["features.21.bias"])
    assert all(k.startswith("head.") for k in model.transfer.fresh)


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize(("pipeline", "size"), [("upscale224", 224), ("direct48", 48)])
def test_freeze_backbone_trains_only_the_head(backbone: str, pipeline: str, size: int) -> None:
    model = build_model(backbone, pipeline, freeze_backbone=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)
    if pipeline == "direct48" or backbone == "resnet18":  # keep the suite fast
        model.train()
        loss = model(torch.randn(2, 3, size, size)).sum()
        loss.backward()
        assert all(p.grad is not None for n, p in model.named_parameters() if n in trainable)
        assert all(p.grad is None for p in model.backbone.parameters())


def test_missing_weights_name_the_expected_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*_args, **_kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable) as info:
        build_model("resnet18", "direct48", pretrained=True)
    message = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "speed benchmarks do not need pretrained weights" in message


class _RunsCode:
    """Unpickling this creates a file: a stand-in for a checkpoint that runs a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant_checkpoint(torch_home: Path, marker: Path) -> Path:
    from emobench.models import get_backbone
    from emobench.models.build import cached_weights_path

    path = torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert path.name == cached_weights_path(get_backbone("resnet18")).name
    path.parent.mkdir(parents=True)
    torch.save({"conv1.weight": _RunsCode(marker)}, path)
    return path


def test_planted_checkpoint_with_a_wrong_hash_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "code-ran"
    planted = _plant_checkpoint(tmp_path / "home", marker)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsUnavailable) as info:
        build_model("resnet18", "direct48", pretrained=True)
    assert not marker.exists()
    message = str(info.value)
    assert str(planted) in message and "does not start with f37072fd" in message
    assert "\n" not in message


def test_planted_checkpoint_with_a_matching_hash_still_cannot_run_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a file whose hash passes is unpickled with weights_only=True."""
    marker = tmp_path / "code-ran"
    planted = _plant_checkpoint(tmp_path / "home", marker)
    trust_checkpoint(monkeypatch, tmp_path / "home", "resnet18")
    with pytest.raises(WeightsUnavailable, match="could not be loaded") as info:
        build_model("resnet18", "upscale224", pretrained=True)
    assert not marker.exists()
    assert str(planted) in str(info.value) and "\n" not in str(info.value)


def test_checkpoint_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    path = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable, match="FIFO"):
        build_model("resnet18", "direct48", pretrained=True)


def test_expected_hash_comes_from_the_file_name() -> None:
    from emobench.models.build import expected_sha256_prefix

    assert expected_sha256_prefix(Path("resnet18-f37072fd.pth")) == "f37072fd"
    assert expected_sha256_prefix(Path("vgg16-397923af.pth")) == "397923af"
    assert expected_sha256_prefix(Path("weights.pth")) is None
