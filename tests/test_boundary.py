import numpy as np
import pytest
import torch

from deepfake_kernel.detectors import create_model
from deepfake_kernel.training.boundary import BoundaryModel, boundary_loss, feature_module


def test_the_map_comes_from_the_stride_16_stage():
    model = BoundaryModel(create_model("efficientnet_lite0", input_size=64))
    assert feature_module(model.classifier.network) == ("blocks.4", 112)
    inputs = model.classifier.preprocess(np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8))
    logits, maps = model(inputs)
    assert logits.shape == (3,) and maps.shape == (3, 1, 4, 4)
    # the classifier alone gives the same logits: the head only reads its features
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(inputs)[0], model.classifier(inputs))


def test_a_network_without_stages_is_refused():
    with pytest.raises(ValueError, match="stride 16"):
        feature_module(torch.nn.Linear(3, 1))


def test_loss_counts_only_images_whose_map_is_known():
    logits = torch.full((2, 1, 4, 4), -4.0)  # "no boundary anywhere"
    maps = torch.zeros(2, 16, 16)
    maps[1] = 1.0
    first = boundary_loss(logits, maps, torch.tensor([1.0, 0.0]))
    assert first < 0.05  # right about the first image
    maps[1] = 0.3  # an unknown image's map does not matter
    torch.testing.assert_close(boundary_loss(logits, maps, torch.tensor([1.0, 0.0])), first)
    both = boundary_loss(logits, maps, torch.tensor([1.0, 1.0]))
    assert both > 0.5  # known, the second image's boundary is missed
