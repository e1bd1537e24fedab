"""Both pipelines' models for every registered backbone: pinned parameter counts, shapes, feature
maps, pretrained weights copied where shapes match, checkpoints refused unless they are safe."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

from emobench.errors import UsageError, WeightsUnavailable
from emobench.models import BACKBONES, EmotionNet, build_model, expand_backbones
from emobench.models.transfer import sum_pool_kernel
from tests.conftest import trust_checkpoint, write_fake_checkpoint


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


PIPELINE_SIZES = [("upscale224", 224), ("direct48", 48)]
# Exact parameter counts (7 classes); a change here changes every report's parameter ratio.
PARAMS = {
    "vgg11": (128_795_015, 5_290_375),
    "vgg13": (128_979_527, 5_474_887),
    "vgg16": (134_289_223, 8_424_775),
    "vgg19": (139_598_919, 11_374_663),
    "resnet18": (11_180_103, 11_301_959),
    "resnet34": (21_288_263, 21_410_119),
    "resnet50": (23_522_375, 24_026_695),
    "mobilenet_v3_small": (1_525_031, 1_525_031),
    "mobilenet_v3_large": (4_210_999, 4_210_999),
    "efficientnet_b0": (4_016_515, 4_016_515),
    "convnext_tiny": (27_825_511, 27_825_511),
}
DIRECT48_MAP = {"vgg": (3, 3), "resnet": (6, 6), "mobilenet_v3": (3, 3)}
DIRECT48_MAP |= {"efficientnet": (3, 3), "convnext": (3, 3)}


def meta_model(backbone: str, pipeline: str, num_classes: int = 7) -> EmotionNet:
    with torch.device("meta"):
        return build_model(backbone, pipeline, num_classes=num_classes).eval()


def test_every_backbone_has_pinned_counts() -> None:
    assert list(PARAMS) == list(BACKBONES)


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_parameter_counts_pinned(backbone: str) -> None:
    counts = tuple(n_params(meta_model(backbone, p)) for p, _ in PIPELINE_SIZES)
    assert counts == PARAMS[backbone]


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize(("pipeline", "size"), PIPELINE_SIZES)
def test_output_shape_and_feature_map(backbone: str, pipeline: str, size: int) -> None:
    """On the meta device: shapes are real, compute is free."""
    model = meta_model(backbone, pipeline, num_classes=5)
    maps: list[tuple[int, ...]] = []
    for m in model.backbone.modules():
        m.register_forward_hook(
            lambda _m, _i, out: (
                maps.append(tuple(out.shape[-2:])) if out.dim() == 4 and out.shape[-1] > 1 else None
            )
        )
    with torch.device("meta"):
        out = model(torch.zeros(2, 3, size, size))
    assert out.shape == (2, 5)
    assert model.input_size == size
    assert maps[-1] == model.feature_map  # the last activation before global pooling
    family = BACKBONES[backbone].family
    assert model.feature_map == ((7, 7) if pipeline == "upscale224" else DIRECT48_MAP[family])


@pytest.mark.parametrize(
    ("backbone", "pipeline", "size"),
    [
        ("resnet18", "direct48", 48),
        ("mobilenet_v3_small", "direct48", 48),
        ("mobilenet_v3_small", "upscale224", 224),
        ("efficientnet_b0", "direct48", 48),
        ("convnext_tiny", "direct48", 48),
    ],
)
def test_real_forward(backbone: str, pipeline: str, size: int) -> None:
    model = build_model(backbone, pipeline, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 5) and torch.isfinite(out).all()


def test_all_expands_to_every_registered_backbone() -> None:
    assert expand_backbones(["resnet18", "all", "vgg16"]) == (
        "resnet18",
        *[b for b in BACKBONES if b != "resnet18"],
    )
    assert len(expand_backbones(["all"])) == 11


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


@pytest.mark.parametrize("backbone", list(BACKBONES))
@pytest.mark.parametrize(("pipeline", "size"), PIPELINE_SIZES)
def test_freeze_backbone_trains_only_the_head(backbone: str, pipeline: str, size: int) -> None:
    with torch.device("meta"):
        model = build_model(backbone, pipeline, freeze_backbone=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)


@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_small"])
def test_frozen_backbone_gets_no_gradients(backbone: str) -> None:
    model = build_model(backbone, "direct48", freeze_backbone=True).train()
    model(torch.randn(2, 3, 48, 48)).sum().backward()
    assert all(p.grad is not None for p in model.head.parameters())
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
    assert "--no-pretrained" in message and "without --pretrained" not in message  # the flag


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


# one backbone per family not covered above (vgg16 and resnet18 have their own tests)
@pytest.mark.parametrize(
    "backbone", ["resnet50", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny"]
)
def test_direct48_transfer_from_fake_checkpoint(
    backbone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_fake_checkpoint(tmp_path, backbone)
    trust_checkpoint(monkeypatch, tmp_path, backbone)
    model = build_model(backbone, "direct48", pretrained=True)
    transfer = model.transfer
    assert transfer is not None
    assert transfer.source == str(BACKBONES[backbone].weights)
    state = model.state_dict()
    for key in transfer.copied:
        torch.testing.assert_close(state[key], src[key.removeprefix("backbone.")], rtol=0, atol=0)
    assert len(transfer.copied) + len(transfer.derived) + len(transfer.fresh) == len(state)
    if backbone == "resnet50":
        # the resnet18 stem rule: the 3x3 stem derived from the 7x7, fc replaced by a new head
        assert list(transfer.derived) == ["backbone.conv1.weight"]
        torch.testing.assert_close(
            state["backbone.conv1.weight"], sum_pool_kernel(src["conv1.weight"])
        )
        assert set(transfer.fresh) == {k for k in state if k.startswith("head.")}
        assert len(transfer.copied) == len(src) - 3  # all but conv1.weight, fc.weight, fc.bias
    else:
        # stride-only rules: every pretrained tensor but the 1000-class layer, as is
        assert transfer.derived == {}
        assert set(transfer.fresh) == {"head.weight", "head.bias"}
        assert len(transfer.copied) == len(src) - 2


def test_claims_explain_parameters_per_family() -> None:
    from emobench.readout.claims import _params_origin

    assert "same tensors" in _params_origin("mobilenet_v3_small")
    assert "same tensors" in _params_origin("convnext_tiny")
    assert "do not depend on input size" in _params_origin("resnet50")
    assert "block 5" in _params_origin("vgg11")
    assert "plugin" in _params_origin("mymodels:tiny")
