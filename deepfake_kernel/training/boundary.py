"""Blend-boundary supervision for training (Face X-ray, Li et al. 2020): besides its FAKE logit, the network is
asked *where* a self-blended face was blended, from its stride-16 features.

A binary label lets a network tell pairs apart by anything that differs; a boundary map names the place, which is
the same for every identity, so it pulls the features towards the blend itself. The map head exists only in
training: the exported member is the plain classifier, so ``predict`` and the weights format do not change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_REDUCTION = 16  # the map is predicted at 1/16 of the input side (14 × 14 at 224 px)


def feature_module(network: nn.Module, reduction: int = FEATURE_REDUCTION) -> tuple[str, int]:
    """(module name, channels) of the last stage of a timm ``network`` at ``reduction``, from its ``feature_info``."""
    info = getattr(network, "feature_info", None)
    chosen = [f for f in (info or []) if f.get("reduction") == reduction]
    if not chosen:
        raise ValueError(f"--boundary-loss needs a timm backbone with a stage at stride {reduction} "
                         f"(EfficientNet, ResNet, Xception); {type(network).__name__} has none")
    return chosen[-1]["module"], int(chosen[-1]["num_chs"])


class BoundaryModel(nn.Module):
    """A :class:`~deepfake_kernel.detectors.FaceClassifier` and a small head on one of its stages; ``forward``
    returns ``(logits (B,), boundary logits (B, 1, h, w))``."""

    def __init__(self, classifier: nn.Module, reduction: int = FEATURE_REDUCTION):
        super().__init__()
        self.classifier = classifier
        name, channels = feature_module(classifier.network, reduction)
        self.head = nn.Sequential(nn.Conv2d(channels, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.Conv2d(64, 1, 1))
        self._features: list[torch.Tensor] = []
        dict(classifier.network.named_modules())[name].register_forward_hook(
            lambda _module, _inputs, output: self._features.append(output))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._features.clear()
        logits = self.classifier(images)
        return logits, self.head(self._features[-1])


def boundary_loss(map_logits: torch.Tensor, maps: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy of the predicted boundary against ``maps`` (``(B, H, W)`` in 0..1, area-
    averaged to the prediction's size), over the images whose map is ``known`` (``(B,)`` of 0/1)."""
    target = F.interpolate(maps[:, None].float(), size=map_logits.shape[-2:], mode="area")
    per_image = F.binary_cross_entropy_with_logits(map_logits.float(), target, reduction="none").mean(dim=(1, 2, 3))
    return (per_image * known).sum() / known.sum().clamp(min=1.0)
