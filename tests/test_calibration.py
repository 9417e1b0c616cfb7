"""The out-of-family calibration (evaluation/calibration.py)."""
import numpy as np

from deepfake_kernel.evaluation import calibration


def test_minimax_calibration_says_half_when_the_ranking_flips_between_families():
    # family a: higher raw = fake; family b: the opposite. No slope helps both: the fit must say ~0.5.
    raw = np.array([0.9, 0.8, 0.2, 0.1, 0.1, 0.2, 0.8, 0.9])
    labels = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    families = np.array(["a"] * 4 + ["b"] * 4)
    fit = calibration.fit_minimax_calibration(raw, labels, families)
    probs = calibration.apply_calibration(fit, raw)
    assert np.all(np.abs(probs - 0.5) < 0.02) and fit["worst_family_log_loss"] <= 0.72  # flattest slope: 0.02
    # and a model that ranks well everywhere is allowed to be confident
    good = calibration.fit_minimax_calibration(np.array([0.9, 0.8, 0.2, 0.1] * 2), np.array([1, 1, 0, 0] * 2),
                                                families)
    assert good["worst_family_log_loss"] < 0.3
