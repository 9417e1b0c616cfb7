import numpy as np
import pytest

from deepfake_kernel.pipeline.ensemble import ProbabilityClipper, track_score, video_score, weighted_mean


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


def test_fit_temperature_recovers_an_overconfident_model():
    from deepfake_kernel.pipeline.ensemble import fit_temperature, sigmoid

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    true_logit = np.where(labels == 1, 1.0, -1.0) * 1.5 + rng.normal(0, 1, 2000)
    overconfident = sigmoid(3 * true_logit * 2)  # calibrated would be sigmoid(3 * true_logit)
    temperature, bias = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(2.0, rel=0.1) and abs(bias) < 0.2


def test_choose_clip_prefers_wide_bounds_for_confident_mistakes():
    from deepfake_kernel.pipeline.ensemble import choose_clip

    labels = np.array([1] * 50 + [0] * 50)
    probs = np.where(labels == 1, 0.999, 0.001)
    probs[0] = 0.0001  # one confident mistake
    lo, hi = choose_clip(probs, labels)
    assert lo > 0.001 and hi > 0.9


def test_stacker_learns_which_member_to_trust():
    from deepfake_kernel.pipeline.ensemble import Stacker, sigmoid, stacking_features

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    good = sigmoid(np.where(labels == 1, 2.0, -2.0) + rng.normal(0, 1, 400))
    noise = rng.random(400)
    features = np.stack([stacking_features({"good": g, "noise": n}, ["good", "noise"], 10, 1, 0.99)
                         for g, n in zip(good, noise)])
    stacker = Stacker.fit(features, labels, ["good", "noise"])
    assert abs(stacker.coef[0]) > 5 * abs(stacker.coef[1])
    again = Stacker.from_dict(stacker.to_dict())
    assert again(features[0]) == pytest.approx(stacker(features[0]))


def test_test_set_shift_is_the_median_logit_and_ignores_a_nan():
    from deepfake_kernel.pipeline.ensemble import logit, test_set_shift

    raw = [0.2, 0.5, 0.9]
    assert test_set_shift(raw) == pytest.approx(0.0, abs=1e-9)
    assert test_set_shift(raw + [float("nan")]) == pytest.approx(float(np.median(logit(np.array(raw)))))
    with pytest.raises(ValueError):
        test_set_shift([float("nan")])
