"""``create_model``: a registered detector built with random weights (nothing is downloaded)."""
from __future__ import annotations

from dataclasses import replace

import torch

from .classifier import FaceClassifier, SequenceClassifier
from .registry import get_builder, get_spec


def create_model(name: str, input_size: int | None = None, **kwargs) -> FaceClassifier:
    """Build registered detector ``name`` with random weights.

    ``input_size`` overrides the registered face size (smaller for CPU recipes and tests); other keyword
    arguments are passed to the builder through ``spec.kwargs``. Trained weights come from a local checkpoint
    (:mod:`.weights`).
    """
    spec = get_spec(name)
    if input_size is not None:
        spec = replace(spec, input_size=int(input_size))
    if kwargs:
        spec = replace(spec, kwargs={**spec.kwargs, **kwargs})
    network = get_builder(name)(spec)
    if spec.sequence_length:
        # several crops of one track per sample; 3D convolutions do not take the 4-d channels_last format
        return SequenceClassifier(spec, network)
    return FaceClassifier(spec, network).to(memory_format=torch.channels_last)
