"""The out-of-family calibration (evaluation/calibration.py)."""
import numpy as np

from deepfake_kernel import metrics
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


def test_a_two_video_family_misranked_flattens_the_fit_over_families_but_not_over_folds(caplog, tmp_path):
    # folds a and b rank their eight videos well; fold b also holds a family "tiny" of one fake and one real in
    # the wrong order. Over families that pair is the worst family at every slope: the fit goes to the flattest.
    # Over folds it is pooled with b's eight videos and the fit stays confident.
    good = [(0.9, 1), (0.8, 1), (0.7, 1), (0.6, 1), (0.4, 0), (0.3, 0), (0.2, 0), (0.1, 0)]
    rows = [{"raw": r, "label": y, "family": fold, "fold": fold} for fold in ("a", "b") for r, y in good]
    rows += [{"raw": 0.3, "label": 1, "family": "tiny", "fold": "b"}, {"raw": 0.7, "label": 0, "family": "tiny",
                                                                          "fold": "b"}]
    with caplog.at_level("WARNING"):
        by_family = calibration.calibration_report(rows)
    assert "tiny (1, 1)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        by_fold = calibration.calibration_report(rows, minimax_over="fold")
    assert "tiny" not in caplog.text  # pooled into fold b: ten videos
    assert by_family["fit"]["temperature"] == 50.0 and by_family["fit"]["rule"] == "minimax over held-out families"
    assert by_fold["fit"]["temperature"] < 5 and by_fold["fit"]["rule"] == "minimax over held-out folds"
    # judged leave one fold out, family a gains from the confident fit and the tiny family pays for it
    families = {k: by_fold["leave_one_fold_out"]["families"][k]["log_loss"] for k in ("a", "tiny")}
    assert families["a"] < by_family["leave_one_fold_out"]["families"]["a"]["log_loss"] - 0.1
    assert families["tiny"] > calibration.CONSTANT_LOG_LOSS
    try:
        calibration.calibration_report(rows, minimax_over="seed")
    except ValueError as exc:
        assert "family, fold, test-set" in str(exc)
    else:
        raise AssertionError("an unknown rule was accepted")


def test_minimax_over_test_sets_holds_the_fit_to_its_worst_run_not_to_the_pool():
    # fold a's two seeds: seed 0 ranks its videos well, seed 1 is unsure and half wrong. Pooled over the fold the
    # good run carries the bad one and the fit stays sharp; over test sets (fold x seed) the bad run is the worst
    # group and the fit flattens, so that no run is overclaimed.
    good = [(0.95, 1), (0.9, 1), (0.85, 1), (0.8, 1), (0.2, 0), (0.15, 0), (0.1, 0), (0.05, 0)]
    poor = [(0.9, 1), (0.7, 1), (0.3, 1), (0.2, 0), (0.8, 0), (0.6, 0), (0.25, 0), (0.1, 1)]
    rows = [{"raw": r, "label": y, "family": "a", "fold": "a", "seed": 0} for r, y in good]
    rows += [{"raw": r, "label": y, "family": "a", "fold": "a", "seed": 1} for r, y in poor]
    rows += [{"raw": r, "label": y, "family": "b", "fold": "b", "seed": s} for s in (0, 1) for r, y in good]
    by_fold = calibration.calibration_report(rows, minimax_over="fold")
    by_run = calibration.calibration_report(rows, minimax_over="test-set")
    assert by_run["fit"]["rule"] == "minimax over held-out test sets (fold x seed)"
    assert by_run["fit"]["temperature"] > by_fold["fit"]["temperature"]
    raw = np.array([r["raw"] for r in rows[8:16]])
    labels = np.array([r["label"] for r in rows[8:16]], float)
    worst = {name: metrics.log_loss(labels, calibration.apply_calibration(report["fit"], raw))
             for name, report in (("fold", by_fold), ("run", by_run))}
    assert worst["run"] < worst["fold"] and worst["run"] <= calibration.CONSTANT_LOG_LOSS + 1e-6


def test_least_confident_fit_is_the_flattest_that_meets_the_target_on_every_group():
    # two folds that rank their videos well: minimax makes the fit as sharp as they bear; with a target the fit is
    # the smallest slope at which both folds still meet it, so a third source that ranks worse is overclaimed less
    good = [(0.95, 1), (0.9, 1), (0.85, 1), (0.8, 1), (0.2, 0), (0.15, 0), (0.1, 0), (0.05, 0)]
    rows = [{"raw": r, "label": y, "family": f, "fold": f} for f in ("a", "b") for r, y in good]
    sharp = calibration.calibration_report(rows)
    least = calibration.calibration_report(rows, target=0.5)
    assert least["fit"]["target_met"] and least["fit"]["target"] == 0.5
    assert "least confident with log loss <= 0.5 on every held-out family" in least["fit"]["rule"]
    assert least["fit"]["temperature"] > sharp["fit"]["temperature"]
    raw = np.array([r["raw"] for r in rows])
    labels = np.array([r["label"] for r in rows], float)
    losses = [metrics.log_loss(labels[i:i + 8], calibration.apply_calibration(least["fit"], raw[i:i + 8]))
              for i in (0, 8)]
    assert max(losses) <= 0.5 and least["fit"]["worst_family_log_loss"] == max(round(x, 6) for x in losses)
    # every flatter slope of the grid misses the target on some fold, whatever its clip
    slope = 1 / least["fit"]["temperature"]
    grid = calibration.grid_losses(raw, labels, np.array([r["fold"] for r in rows]))
    flatter = [worst for (s, _, _), (worst, _) in grid.items() if s < slope - 1e-9]
    assert flatter and min(flatter) > 0.5
    # on videos it orders wrong, the flatter fit costs less than the sharp one
    wrong = np.array([0.1, 0.9]), np.array([1.0, 0.0])
    assert metrics.log_loss(wrong[1], calibration.apply_calibration(least["fit"], wrong[0])) < metrics.log_loss(
        wrong[1], calibration.apply_calibration(sharp["fit"], wrong[0]))
    # a target no slope meets: the minimax fit, said so
    unreachable = calibration.calibration_report(rows, target=0.001)
    assert not unreachable["fit"]["target_met"]
    assert unreachable["fit"]["temperature"] == sharp["fit"]["temperature"]
    # each fold judged with the fit made on the other the same way
    assert all(fit["target"] == 0.5 for fit in least["fits_without_each_fold"].values())
