"""The detector registry, a leaf: names → (:class:`DetectorSpec`, builder), in the spirit of timm's registry.

Detector modules register themselves when they are imported (:mod:`.backbones`, :mod:`.zoo`; the package's
``__init__`` imports both). The registry knows nothing of models' classes, weights or training.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)  # EfficientNet-Lite ImageNet weights: (x - 127) / 128
LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)

Builder = Callable[["DetectorSpec"], Any]  # spec -> torch.nn.Module returning (B, 1) or (B,) logits


@dataclass(frozen=True)
class DetectorSpec:
    """What a detector needs to be built and fed: registry name, architecture, input size, normalisation."""

    name: str
    arch: str
    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    description: str = ""
    kwargs: dict = field(default_factory=dict)
    # frames of one face track the detector reads at once (0: one crop at a time); see classifier.SequenceClassifier
    sequence_length: int = 0


_REGISTRY: dict[str, tuple[DetectorSpec, Builder]] = {}


def register_detector(spec: DetectorSpec):
    """Decorator: register ``builder(spec) -> nn.Module`` under ``spec.name``."""

    def wrap(builder: Builder) -> Builder:
        if spec.name in _REGISTRY:
            raise ValueError(f"detector {spec.name!r} is already registered")
        _REGISTRY[spec.name] = (spec, builder)
        return builder

    return wrap


def list_detectors() -> list[str]:
    """Names accepted by :func:`~deepfake_kernel.detectors.create_model`."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> DetectorSpec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown detector {name!r}; registered: {', '.join(list_detectors())}")
    return _REGISTRY[name][0]


def get_builder(name: str) -> Builder:
    get_spec(name)
    return _REGISTRY[name][1]
