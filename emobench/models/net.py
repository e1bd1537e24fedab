"""The model type both pipelines produce: a backbone, a head and where its weights came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn


@dataclass(frozen=True)
class TransferReport:
    """Which state-dict entries came from pretrained weights and which are freshly initialised.

    `derived` maps an entry to the rule that built it from a pretrained tensor of another shape.
    """

    source: str  # e.g. "VGG16_Weights.IMAGENET1K_V1", or "random"
    copied: tuple[str, ...]
    derived: dict[str, str] = field(default_factory=dict)
    fresh: tuple[str, ...] = ()


class EmotionNet(nn.Module):
    """backbone -> head; `transfer` records where every tensor came from."""

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        *,
        backbone_name: str,
        pipeline: str,
        input_size: int,
        feature_map: tuple[int, ...],  # (H, W); () for a plugin with no 4-D activation
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.backbone_name = backbone_name
        self.pipeline = pipeline
        self.input_size = input_size
        self.feature_map = feature_map
        self.transfer: TransferReport | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))

    def freeze_backbone(self) -> None:
        """Stop gradients through the backbone; only the head trains."""
        for param in self.backbone.parameters():
            param.requires_grad_(False)
