import numpy as np
import pytest

from deepfake_kernel.ensemble import ProbabilityClipper, track_score, video_score, weighted_mean


def test_weighted_mean_of_members():
    probs = {"a": np.array([0.2, 0.8]), "b": np.array([0.6, 0.4])}
    np.testing.assert_allclose(weighted_mean(probs, {"a": 1, "b": 1}), [0.4, 0.6])
    np.testing.assert_allclose(weighted_mean(probs, {"a": 3, "b": 1}), [0.3, 0.7])
    np.testing.assert_allclose(weighted_mean(probs, {"a": 0, "b": 0}), [0.4, 0.6])


def test_one_fake_track_makes_the_video_fake():
    assert track_score(np.array([0.1, 0.3])) == pytest.approx(0.2)
    assert video_score([0.2, 0.9]) == 0.9


def test_clipper_bounds_and_calibration():
    clip = ProbabilityClipper(0.05, 0.95)
    assert clip(0.0) == 0.05 and clip(1.0) == 0.95 and clip(0.5) == 0.5
    np.testing.assert_allclose(clip(np.array([0.01, 0.5, 0.99])), [0.05, 0.5, 0.95])
    softened = ProbabilityClipper(0.0, 1.0, temperature=2.0)
    assert 0.5 < softened(0.9) < 0.9
    shifted = ProbabilityClipper(0.0, 1.0, bias=1.0)
    assert shifted(0.5) == pytest.approx(1 / (1 + np.exp(-1)))
    with pytest.raises(ValueError):
        ProbabilityClipper(0.9, 0.1)
    assert ProbabilityClipper.from_manifest({"lo": 0.02, "hi": 0.98}, {"temperature": 1.5}).temperature == 1.5
