"""Build the upscale224 and direct48 models for any registered backbone."""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from emobench.errors import UsageError, WeightsUnavailable
from emobench.files import open_regular
from emobench.models.lookup import get_backbone
from emobench.models.net import EmotionNet, TransferReport
from emobench.models.plugin import build_plugin
from emobench.models.registry import BackboneSpec, input_size
from emobench.models.transfer import STEM_7X7_TO_3X3, DeriveRule, transfer_weights
from emobench.names import DIRECT, UPSCALE

UPSCALE224 = UPSCALE
DIRECT48 = DIRECT

VGG_BLOCKS_KEPT = 4  # of 5: 48 -> 24 -> 12 -> 6 -> 3
VGG_FEATURES = 512
UPSCALE224_MAP = (7, 7)  # every registered family downsamples 224 by 32
CONVNEXT_STEM_STRIDE_48 = 2  # patchify 4x4/4 -> 4x4/2 (padding 1): 48 -> 24 -> 12 -> 6 -> 3
RANDOM_SOURCE = "random"
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # torch.hub.HASH_REGEX, at least 8 digits
HASH_BLOCK_BYTES = 2**20

Parts = tuple[nn.Module, nn.Module, tuple[int, int]]  # backbone, head, final feature map


def build_model(
    backbone: str,
    pipeline: str,
    num_classes: int = 7,
    pretrained: bool = False,
    freeze_backbone: bool = False,
) -> EmotionNet:
    """Build one pipeline's model; `model.transfer` says which tensors are pretrained.

    upscale224 is the torchvision model with its last classifier layer replaced; direct48 is the
    backbone adapted to 48x48 inputs, with every pretrained tensor whose shape fits copied in.
    """
    spec = get_backbone(backbone)
    size = input_size(pipeline)
    if num_classes < 1:
        raise UsageError(f"num_classes must be >= 1, got {num_classes}")
    if spec.is_plugin:
        if freeze_backbone:  # the plugin's module is one piece: there is no head to keep
            raise UsageError(f"{backbone} is a plugin: it has no separate head to train alone")
        model: EmotionNet = build_plugin(spec, pipeline, num_classes)
        return model
    rule = FAMILIES[spec.family]
    source = load_pretrained(spec) if pretrained else None
    source_name = str(spec.weights) if pretrained else RANDOM_SOURCE

    if pipeline == UPSCALE224:
        tv_model = source if source is not None else spec.torchvision_model(None)
        backbone_mod, head, fmap = rule.upscale224(tv_model, num_classes)
    else:
        backbone_mod, head, fmap = rule.direct48(spec.torchvision_model(None), num_classes)
    model = EmotionNet(
        backbone_mod,
        head,
        backbone_name=spec.name,
        pipeline=pipeline,
        input_size=size,
        feature_map=fmap,
    )
    model.transfer = _transfer(model, pipeline, source, source_name, rule.derive)
    if freeze_backbone:
        model.freeze_backbone()
    return model


def cached_weights_path(spec: BackboneSpec) -> Path:
    """Where torchvision's weights API looks for this backbone's checkpoint (under TORCH_HOME)."""
    if spec.weights is None:
        raise UsageError(f"{spec.name} is a plugin: it loads its own weights")
    filename = os.path.basename(urlparse(spec.weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def expected_sha256_prefix(path: Path) -> str | None:
    """The sha256 prefix torchvision's checkpoint names carry (resnet18-f37072fd.pth ->
    f37072fd), the same convention torch.hub's `check_hash` uses; None when there is none."""
    match = HASH_IN_NAME.search(path.name)
    return match.group(1) if match else None


def load_pretrained(spec: BackboneSpec) -> nn.Module:
    """The torchvision model with ImageNet weights from torchvision's cache (downloaded there
    when missing).

    torchvision itself unpickles the cached file with `weights_only=False` and checks its hash
    only while downloading, so a planted file could run code. Here the file's sha256 must start
    with the prefix in its name, and it is read with `torch.load(weights_only=True)`, which
    refuses anything but tensors and plain containers.
    """
    path = cached_weights_path(spec)
    prefix = expected_sha256_prefix(path)
    if prefix is None:
        raise WeightsUnavailable(
            f"{path}: the file name carries no sha256 prefix, so its contents cannot be verified"
        )
    if not os.path.lexists(path):
        _download(spec, path, prefix)
    _verify_sha256(path, prefix)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = spec.torchvision_model(None)
        model.load_state_dict(state)
    except Exception as exc:  # unpickling refused, truncated zip, wrong keys or shapes
        detail = " ".join(str(exc).split())[:200]
        raise WeightsUnavailable(
            f"cached pretrained weights for {spec.name} at {path} could not be loaded "
            f"({type(exc).__name__}: {detail})"
        ) from None
    return model


def _download(spec: BackboneSpec, path: Path, prefix: str) -> None:
    if spec.weights is None:
        raise UsageError(f"{spec.name} is a plugin: it loads its own weights")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the download goes to a temporary file, is hash-checked, then moved into place
        torch.hub.download_url_to_file(spec.weights.url, str(path), prefix, progress=False)
    except Exception as exc:  # URLError, OSError, a hash mismatch of the download
        raise WeightsUnavailable(
            f"pretrained weights for {spec.name} are not cached at {path} and could not be "
            f"downloaded ({type(exc).__name__}); copy {path.name} there, or pass "
            "--no-pretrained (random initialisation; speed benchmarks do not need "
            "pretrained weights)"
        ) from None


_verified: dict[tuple[int, int, int, int], str] = {}  # (dev, inode, size, mtime) -> digest


def _verify_sha256(path: Path, prefix: str) -> None:
    """WeightsUnavailable unless the regular file at `path` has a sha256 starting `prefix`."""
    with open_regular(path, WeightsUnavailable, noun="checkpoint file") as fh:
        st = os.fstat(fh.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        digest = _verified.get(key)
        if digest is None:
            sha = hashlib.sha256()
            for block in iter(lambda: fh.read(HASH_BLOCK_BYTES), b""):
                sha.update(block)
            digest = sha.hexdigest()
            _verified[key] = digest
    if not digest.startswith(prefix):
        raise WeightsUnavailable(
            f"{path}: sha256 {digest[:16]}... does not start with {prefix}, the hash in its "
            "name: the file is corrupt or was replaced; delete it to download it again"
        )


def _transfer(
    model: EmotionNet,
    pipeline: str,
    source: nn.Module | None,
    source_name: str,
    derive: Mapping[str, DeriveRule],
) -> TransferReport:
    keys = list(model.state_dict())
    if source is None:
        return TransferReport(source=RANDOM_SOURCE, copied=(), fresh=tuple(keys))
    if pipeline == UPSCALE224:
        # torchvision already loaded the weights into the backbone; only the new head is fresh.
        copied = tuple(k for k in keys if k.startswith("backbone."))
        fresh = tuple(k for k in keys if not k.startswith("backbone."))
        return TransferReport(source=source_name, copied=copied, fresh=fresh)
    return transfer_weights(
        model,
        source.state_dict(),
        source_name=source_name,
        derive=derive,
    )


def _classifier_upscale224(tv_model: Any, num_classes: int) -> Parts:
    last = tv_model.classifier[-1]
    tv_model.classifier[-1] = nn.Identity()
    return tv_model, nn.Linear(last.in_features, num_classes), UPSCALE224_MAP


def _resnet_upscale224(tv_model: Any, num_classes: int) -> Parts:
    fc = tv_model.fc
    tv_model.fc = nn.Identity()
    return tv_model, nn.Linear(fc.in_features, num_classes), UPSCALE224_MAP


def _vgg_direct48(tv_model: Any, num_classes: int) -> Parts:
    layers = list(tv_model.features.children())
    pools = [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
    features = nn.Sequential(*layers[: pools[VGG_BLOCKS_KEPT - 1] + 1])
    backbone = nn.Sequential(
        OrderedDict(features=features, pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten())
    )
    head = nn.Sequential(
        nn.Dropout(0.5),
        nn.Linear(VGG_FEATURES, 1024),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(1024, 256),
        nn.ReLU(inplace=True),
        nn.Dropout(0.3),
        nn.Linear(256, num_classes),
    )
    side = 48 // 2**VGG_BLOCKS_KEPT
    return backbone, head, (side, side)


def _resnet_direct48(tv_model: Any, num_classes: int) -> Parts:
    stem = nn.Conv2d(3, tv_model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
    backbone = nn.Sequential(
        OrderedDict(
            conv1=stem,
            bn1=tv_model.bn1,
            relu=tv_model.relu,
            layer1=tv_model.layer1,
            layer2=tv_model.layer2,
            layer3=tv_model.layer3,
            layer4=tv_model.layer4,
            avgpool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
        )
    )
    head = nn.Sequential(
        nn.Dropout(0.5),
        nn.Linear(tv_model.fc.in_features, 256),
        nn.ReLU(inplace=True),
        nn.Dropout(0.3),
        nn.Linear(256, num_classes),
    )
    return backbone, head, (6, 6)  # no stride in the stem, no maxpool: 48 / 8


def _unstrided_stem_direct48(tv_model: Any, num_classes: int) -> Parts:
    """MobileNetV3, EfficientNet: the stem conv's stride 2 -> 1; every tensor keeps its shape."""
    stem = tv_model.features[0][0]
    stem.stride = (1, 1)
    backbone, head, _ = _classifier_upscale224(tv_model, num_classes)
    return backbone, head, (3, 3)  # 48 / 16


def _convnext_direct48(tv_model: Any, num_classes: int) -> Parts:
    """ConvNeXt: the 4x4 patchify stem at stride 2 (padding 1) instead of 4; shapes unchanged."""
    stem = tv_model.features[0][0]
    stem.stride = (CONVNEXT_STEM_STRIDE_48, CONVNEXT_STEM_STRIDE_48)
    stem.padding = (1, 1)
    backbone, head, _ = _classifier_upscale224(tv_model, num_classes)
    return backbone, head, (3, 3)  # 48 -> 24, then three 2x2/2 downsamplings


@dataclass(frozen=True)
class FamilyRule:
    """How one family becomes each pipeline's model; `rule` documents the direct48 adaptation."""

    upscale224: Callable[[Any, int], Parts]
    direct48: Callable[[Any, int], Parts]
    rule: str
    derive: Mapping[str, DeriveRule] = field(default_factory=dict)


FAMILIES: dict[str, FamilyRule] = {
    "vgg": FamilyRule(
        _classifier_upscale224,
        _vgg_direct48,
        "conv blocks 1-4 (block 5 and the 4096-wide classifier dropped), global average pool, "
        "512-1024-256 head; final map 3x3",
    ),
    "resnet": FamilyRule(
        _resnet_upscale224,
        _resnet_direct48,
        "7x7/2 stem -> 3x3/1 (weights derived), no max pool, 512- or 2048-256 head; final map 6x6",
        {"backbone.conv1.weight": STEM_7X7_TO_3X3},
    ),
    "mobilenet_v3": FamilyRule(
        _classifier_upscale224,
        _unstrided_stem_direct48,
        "stem conv stride 2 -> 1, everything else (classifier included) copied; final map 3x3",
    ),
    "efficientnet": FamilyRule(
        _classifier_upscale224,
        _unstrided_stem_direct48,
        "stem conv stride 2 -> 1, everything else copied; final map 3x3",
    ),
    "convnext": FamilyRule(
        _classifier_upscale224,
        _convnext_direct48,
        "4x4 patchify stem stride 4 -> 2 (padding 1), everything else copied; final map 3x3",
    ),
}
