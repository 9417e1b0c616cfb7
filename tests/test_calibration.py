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


def test_centring_on_each_test_set_removes_a_sources_offset():
    # both families rank perfectly, but every video of family a looks fake (logits +2 and +4): one slope cannot
    # serve both; centred on each test set's median, both families read ±1 and the fit may be confident
    logits = np.array([4, 4, 2, 2, 1, 1, -1, -1], np.float64)
    raw = 1 / (1 + np.exp(-logits))
    labels = np.array([1, 1, 0, 0] * 2)
    rows = [{"raw": r, "label": int(y), "family": f, "fold": f, "seed": 0}
            for r, y, f in zip(raw, labels, ["a"] * 4 + ["b"] * 4)]
    shifts = calibration.test_set_shifts(rows)
    np.testing.assert_allclose(shifts, [3] * 4 + [0] * 4, atol=1e-6)
    plain = calibration.calibration_report(rows)
    centred = calibration.calibration_report(rows, center=True)
    assert centred["fit"]["center"] == "test_set_median" and plain["fit"]["center"] is None
    assert centred["fit"]["worst_family_log_loss"] < plain["fit"]["worst_family_log_loss"] - 0.1
    # another seed of the same fold is another test set, centred on its own median
    rows2 = rows + [dict(r, seed=1, raw=1 / (1 + np.exp(-(np.log(r["raw"] / (1 - r["raw"])) - 5)))) for r in rows]
    np.testing.assert_allclose(calibration.test_set_shifts(rows2)[8:], [-2] * 4 + [-5] * 4, atol=1e-6)


def test_test_sets_are_centred_on_the_members_scores_before_the_temporal_cue():
    logits = np.array([1.0, 2.0, 3.0, 4.0])
    rows = [{"raw": float(1 / (1 + np.exp(-(x + 2.0)))), "network_raw": str(1 / (1 + np.exp(-x))), "label": 1,
             "family": "a", "fold": "a", "seed": 0} for x in logits]
    np.testing.assert_allclose(calibration.test_set_shifts(rows), [2.5] * 4, atol=1e-6)  # not 4.5
    rows[0]["network_raw"] = ""  # a video whose cue could not be measured: its score is the members' alone
    rows[0]["raw"] = float(1 / (1 + np.exp(-1.0)))
    np.testing.assert_allclose(calibration.test_set_shifts(rows), [2.5] * 4, atol=1e-6)
