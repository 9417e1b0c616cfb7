import numpy as np
import pytest
import torch

from deepfake_kernel.detectors import DetectorSpec, create_model, get_spec, list_detectors, register_detector
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


def test_compiled_member_gives_the_eager_answer():
    """torch.compile (inductor; batches padded to one size) must not change a score nor the saved weights."""
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", input_size=64).eval()
    crops = np.random.default_rng(0).integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)
    eager = model.predict_proba(crops, batch_size=4)
    keys = list(model.state_dict())
    model.compile_network()
    compiled = model.predict_proba(crops, batch_size=4)  # batches of 4, 4 and 2 (padded to 4)
    assert model._compiled is not None, "compilation fell back to eager"
    assert compiled.shape == (10,) and np.abs(compiled - eager).max() < 1e-4
    assert list(model.state_dict()) == keys


def test_a_failing_compile_falls_back_to_eager(monkeypatch, caplog):
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", input_size=64).eval()
    crops = np.random.default_rng(1).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    eager = model.predict_proba(crops)

    def broken_compile(network, **kwargs):
        def call(images):
            raise RuntimeError("no C++ compiler found")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    model.compile_network()
    assert np.allclose(model.predict_proba(crops), eager)
    assert model._compiled is None and "torch.compile failed" in caplog.text


def test_crops_as_a_tensor_give_the_numpy_answer():
    """The detector uploads crops once and hands every member the same tensor: same scores as from numpy."""
    torch.manual_seed(0)
    model = create_model("resnet50", input_size=48).eval()
    crops = np.random.default_rng(2).integers(0, 255, (5, 60, 60, 3), dtype=np.uint8)
    assert np.allclose(model.predict_proba(torch.from_numpy(crops), 2), model.predict_proba(crops, 2), atol=1e-6)


def test_patch_detector_decides_from_local_evidence():
    """efficientnet_lite0_patch: ImageNet start for its stages, one logit per patch, and a patch's logit does not
    see pixels far from it (receptive field of three stages, about 67 px)."""
    from deepfake_kernel.detectors.pretrained import load_efficientnet_lite_imagenet

    torch.manual_seed(0)
    model = create_model("efficientnet_lite0_patch", input_size=224).eval()
    full = load_efficientnet_lite_imagenet(create_model("efficientnet_lite0").network, 0)
    load_efficientnet_lite_imagenet(model.network, 0)
    torch.testing.assert_close(model.network.blocks[2][1].conv_dw.weight, full.blocks[2][1].conv_dw.weight)
    crop = synthetic.face_crop(224)[None]
    changed = crop.copy()
    changed[:, :48, :48] = 255 - changed[:, :48, :48]  # the top-left corner only
    with torch.inference_mode():
        before, after = (model.network.patch_logits(model.preprocess(c))[0, 0] for c in (crop, changed))
        assert before.shape == (28, 28) and model(model.preprocess(crop)).shape == (1,)
        torch.testing.assert_close(model(model.preprocess(crop)), before.mean().reshape(1))
    moved = (after - before).abs() > 1e-5
    assert moved[:4, :4].all() and not moved[16:, 16:].any()


def test_high_pass_detector_loads_imagenet_and_reads_residuals():
    """efficientnet_lite0_srm: its ImageNet start loads (with the tied share at zero it computes exactly what
    efficientnet_lite0 does); the residuals ignore a brightness shift but move with fine texture; the residual path
    changes the stem's output from the start, and training reaches its learned filters."""
    from deepfake_kernel.detectors.backbones import HighPassStem
    from deepfake_kernel.detectors.pretrained import load_efficientnet_lite_imagenet

    torch.manual_seed(0)
    model = create_model("efficientnet_lite0_srm", input_size=224).eval()
    plain = create_model("efficientnet_lite0", input_size=224).eval()
    load_efficientnet_lite_imagenet(model.network, 0)
    load_efficientnet_lite_imagenet(plain.network, 0)
    model.network.classifier.load_state_dict(plain.network.classifier.state_dict())
    stem = model.network.conv_stem
    assert isinstance(stem, HighPassStem) and stem.tied_scale > 0
    torch.testing.assert_close(stem.rgb.weight, plain.network.conv_stem.weight)
    crop = synthetic.face_crop(224)[None]
    with torch.inference_mode():
        x = model.preprocess(crop)
        assert (model(x) - plain(x)).abs().max() > 1e-3  # the residuals count from the start
        stem.tied_scale = 0.0
        torch.testing.assert_close(model(x), plain(x))
        stem.tied_scale = 0.1
    crop = (crop * 0.6 + 40).astype(np.uint8)  # mid-range, so that +20 saturates nowhere
    brighter = crop + np.uint8(20)
    noisy = np.clip(crop + np.random.default_rng(0).normal(0, 4, crop.shape), 0, 255).astype(np.uint8)
    interior = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # away from the zero padding
    base, shifted, textured = (stem.residuals(model.preprocess(c)) for c in (crop, brighter, noisy))
    assert (base - shifted)[interior].abs().max() < 1e-3
    assert (base - textured)[interior].abs().mean() > 0.5
    model.train()
    model(model.preprocess(crop)).sum().backward()
    assert stem.residual.weight.grad.abs().sum() > 0


def _trained_looking_lite0(input_size: int = 48):
    """A Lite0 whose BatchNorm running statistics are far from any one batch's (as after training elsewhere)."""
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", input_size=input_size).eval()
    for m in model.network.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    with torch.no_grad():  # a head that reads the features, so scores vary with the input
        model.network.classifier.weight.normal_(0, 0.02)
    return model


def test_video_norm_normalises_the_stem_with_the_videos_own_statistics():
    model = _trained_looking_lite0()
    crops = np.random.default_rng(0).integers(0, 255, (6, 48, 48, 3), dtype=np.uint8)
    plain = model.predict_proba(crops)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = model.set_video_norm(0).predict_proba(crops, batch_size=2)  # the whole video in one batch regardless
    assert np.abs(adapted - plain).max() > 1e-3
    # the same as setting the stem's running statistics to this video's: biased variance over crops and pixels
    expected = _trained_looking_lite0()
    with torch.inference_mode():
        stem = expected.network.conv_stem(expected.preprocess(crops))
        expected.network.bn1.running_mean.copy_(stem.mean(dim=(0, 2, 3)))
        expected.network.bn1.running_var.copy_(stem.var(dim=(0, 2, 3), unbiased=False))
    np.testing.assert_allclose(adapted, expected.predict_proba(crops), atol=1e-4)
    # nothing learnt is overwritten, and the later layers were not adapted
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    assert not any(m.training for m in model.modules())
    assert len(model.video_norm_layers()) == 1 and model.video_norm_layers()[0] is model.network.bn1


def test_video_norm_makes_a_face_score_depend_on_its_video_and_removes_a_source_offset():
    model = _trained_looking_lite0().set_video_norm(2)
    assert len(model.video_norm_layers()) > 1
    rng = np.random.default_rng(1)
    crops = rng.integers(40, 200, (4, 48, 48, 3), dtype=np.uint8)
    others = rng.integers(0, 255, (4, 48, 48, 3), dtype=np.uint8)
    alone = model.predict_proba(crops)
    together = model.predict_proba(np.concatenate([crops, others]))[:4]
    assert np.abs(alone - together).max() > 1e-3
    # a whole video at another contrast (another source's look): the stem's conv has no bias, so scaling the
    # normalised input scales its output, which the video's own statistics undo; the running ones do not
    model.set_video_norm(0)
    scale = torch.tensor(model.spec.mean).view(1, 1, 1, 3) * 255
    contrast = (scale + 0.6 * (torch.from_numpy(crops).float() - scale))
    assert np.abs(model.predict_proba(contrast) - model.predict_proba(crops)).max() < 1e-3
    model.set_video_norm(None)
    assert model.video_norm_layers() == []
    assert np.abs(model.predict_proba(contrast) - model.predict_proba(crops)).max() > 1e-3


def test_adapt_batchnorm_takes_the_statistics_of_the_given_set_and_keeps_them():
    model = _trained_looking_lite0()
    rng = np.random.default_rng(2)
    crops = rng.integers(0, 255, (10, 48, 48, 3), dtype=np.uint8)
    plain = model.predict_proba(crops)
    late = {k: v.clone() for k, v in model.network.blocks[3:].state_dict().items()}
    assert model.adapt_batchnorm(crops, blocks=0, batch_size=5) == 1
    # the stem's running statistics are now the set's (the mean of two equal batches' means), not the trained ones
    with torch.inference_mode():
        stem = model.network.conv_stem(model.preprocess(crops))
    torch.testing.assert_close(model.network.bn1.running_mean, stem.mean(dim=(0, 2, 3)), atol=1e-4, rtol=1e-4)
    adapted = model.predict_proba(crops)
    assert np.abs(adapted - plain).max() > 1e-3
    # fixed afterwards: a face's score does not depend on the faces scored beside it (unlike per-video norm)
    np.testing.assert_allclose(model.predict_proba(crops[:3]), adapted[:3], atol=1e-6)
    assert not any(m.training for m in model.modules())
    assert model.network.bn1.momentum == 0.1
    assert model.adapt_batchnorm(crops, blocks=2) > 1
    assert all(torch.equal(v, model.network.blocks[3:].state_dict()[k]) for k, v in late.items())
    assert model.adapt_batchnorm(crops[:0], blocks=2) == 0  # no crops: nothing changes
    with pytest.raises(ValueError, match="blocks"):
        model.adapt_batchnorm(crops, blocks=8)
    with pytest.raises(ValueError, match="EfficientNet-style"):
        create_model("resnet50", input_size=32).adapt_batchnorm(crops, blocks=1)
    every = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.network.modules())
    assert model.adapt_batchnorm(crops, blocks=None) == every > model.adapt_batchnorm(crops, blocks=7)
    assert create_model("resnet50", input_size=32).adapt_batchnorm(crops[:4], blocks=None) > 0  # any architecture


def test_video_norm_refuses_networks_it_does_not_know():
    with pytest.raises(ValueError, match="EfficientNet-style"):
        create_model("resnet50", input_size=32).set_video_norm(1)
    with pytest.raises(ValueError, match="blocks"):
        create_model("efficientnet_lite0", input_size=32).set_video_norm(50)
