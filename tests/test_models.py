import numpy as np
import pytest
import torch

from deepfake_kernel.models import DetectorSpec, create_model, get_spec, list_detectors, register_detector
from tests import synthetic


def test_registry_has_the_ensemble_members():
    assert {"xception", "resnet50", "efficientnet_lite0"} <= set(list_detectors())
    assert get_spec("xception").arch == "legacy_xception" and get_spec("xception").input_size == 299
    with pytest.raises(KeyError, match="unknown detector"):
        get_spec("no_such_net")


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError):
        register_detector(DetectorSpec("resnet50", "resnet50", 224))(lambda spec: None)


@pytest.mark.parametrize("name", ["xception", "resnet50", "efficientnet_lite0"])
def test_uniform_api(name):
    torch.manual_seed(0)
    model = create_model(name, input_size=64).eval()
    crops = np.stack([synthetic.face_crop(80), synthetic.noise_frames(1, 80, 80)[0]])
    images = model.preprocess(crops)
    assert images.shape == (2, 3, 64, 64)
    probs = model.predict_proba(crops)
    assert probs.shape == (2,) and np.all((probs >= 0) & (probs <= 1))
    with torch.inference_mode():
        logits = model(images)
        features = model.network.forward_features(images).flatten(1)
    assert logits.shape == (2,)
    # the network's response depends on the face (untrained heads are near-constant, so compare features)
    assert (features[0] - features[1]).norm() > 1e-2 * features[0].norm()


def test_preprocess_normalises_with_the_spec():
    model = create_model("xception", input_size=32)
    white = np.full((1, 32, 32, 3), 255, np.uint8)
    assert torch.allclose(model.preprocess(white), torch.ones(1, 3, 32, 32))  # (1 - 0.5) / 0.5
