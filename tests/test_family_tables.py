"""The cross-family tables (evaluation/family_tables.py)."""
import numpy as np
import pytest

from deepfake_kernel.evaluation import family_tables


def test_a_family_with_one_real_video_does_not_enter_the_mean_auc():
    rows = [{"family": "big", "label": i % 2, "score": 0.4 + 0.2 * (i % 2) * (i % 3 > 0), "fold": "big"}
            for i in range(20)]
    rows += [{"family": "tiny", "label": 1, "score": 0.9, "fold": "tiny"} for _ in range(5)]
    rows += [{"family": "tiny", "label": 0, "score": 0.1, "fold": "tiny"}]
    table = family_tables.family_table(rows, resamples=20)
    assert table["families"]["tiny"]["auc"] == 1.0 and table["mean"]["auc_over"] == ["big"]
    assert table["mean"]["auc"] == table["families"]["big"]["auc"]
    assert "not in the mean" in family_tables.render_table({"table": table})


def test_within_source_auc_leaves_offsets_between_sources_out():
    """Source A scores everything high, source B low; inside each source the fakes rank above the reals. The
    family's AUC pays for the offset, the within-source AUC does not; a source with one class adds no pair."""
    rows = [{"family": "f", "fold": "f", "dataset": "A", "label": 1, "score": s} for s in (0.8, 0.9)]
    rows += [{"family": "f", "fold": "f", "dataset": "A", "label": 0, "score": s} for s in (0.7, 0.75, 0.8)]
    rows += [{"family": "f", "fold": "f", "dataset": "B", "label": 1, "score": s} for s in (0.3, 0.35)]
    rows += [{"family": "f", "fold": "f", "dataset": "B", "label": 0, "score": 0.1}]
    rows += [{"family": "f", "fold": "f", "dataset": "C", "label": 1, "score": 0.05}]  # fakes only
    entry = family_tables.family_table(rows, resamples=0)["families"]["f"]
    assert entry["within_source_pairs"] == 2 * 3 + 2 * 1 and entry["within_source_sources"] == 2
    assert entry["auc_within_source"] == pytest.approx((5.5 + 2) / 8, abs=1e-4)  # the tie 0.8/0.8 counts half
    assert entry["auc"] < entry["auc_within_source"]
    # no source with both classes: said, not a number
    apart = [{**r, "dataset": f"{r['dataset']}{r['label']}"} for r in rows]
    entry = family_tables.family_table(apart, resamples=0)["families"]["f"]
    assert entry["within_source_pairs"] == 0 and np.isnan(entry["auc_within_source"])
    assert "no source holds both classes" in family_tables.render_table(
        {"table": family_tables.family_table(apart, resamples=0)})


def test_methods_are_scored_against_the_family_reals_and_their_own_source():
    """Two manipulations of one family: A's fakes all rank above every real video, B's below them; B's source
    offset hides that inside its own source it ranks above its reals. Variants of a method share its row."""
    rows = [{"family": "f", "fold": "f", "dataset": "one", "label": 0, "score": s, "method": "original"}
            for s in (0.4, 0.5)]
    rows += [{"family": "f", "fold": "f", "dataset": "two", "label": 0, "score": s, "method": ""} for s in (0.1, 0.2)]
    rows += [{"family": "f", "fold": "f", "dataset": "four", "label": 0, "score": 0.45, "method": ""}]  # 5 reals
    rows += [{"family": "f", "fold": "f", "dataset": "one", "label": 1, "score": 0.9, "method": "Swap/c23"},
             {"family": "f", "fold": "f", "dataset": "one", "label": 1, "score": 0.8, "method": "Swap (notes) + SR"},
             {"family": "f", "fold": "f", "dataset": "two", "label": 1, "score": 0.3, "method": "Lip + GFPGAN"},
             {"family": "f", "fold": "f", "dataset": "three", "label": 1, "score": 0.05, "method": "Lip"}]
    rows += [{"family": "g", "fold": "g", "dataset": "g", "label": 1, "score": 0.5, "method": "x"}]  # one class
    table = family_tables.family_table(rows, resamples=0)
    assert set(table["methods"]) == {"f"} and set(table["methods"]["f"]) == {"Swap", "Lip"}
    swap, lip = table["methods"]["f"]["Swap"], table["methods"]["f"]["Lip"]
    assert swap["fakes"] == 2 and swap["auc"] == 1.0
    assert swap["auc_within_source"] == 1.0 and swap["within_source_pairs"] == 2 * 2
    assert lip["fakes"] == 2 and lip["auc"] == pytest.approx(2 / 10)  # 0.3 beats the two reals at 0.1, 0.2
    assert lip["auc_within_source"] == 1.0 and lip["within_source_pairs"] == 1 * 2  # "three" has no real video
    text = family_tables.render_table({"table": table})
    assert "| f | Swap | 2 | 1.000 | 1.000 (4) |" in text and "| f | Lip | 2 | 0.200 |" in text
    # over seeds: each method's AUC per seed, mean ± sd
    flipped = [{**r, "score": 1 - r["score"]} for r in rows]
    summary = family_tables.seed_summary({0: table, 1: family_tables.family_table(flipped, resamples=0)})
    assert summary["methods"]["f"]["Swap"]["auc"] == {0: 1.0, 1: 0.0}
    assert summary["methods"]["f"]["Swap"]["auc_over_seeds"]["mean"] == 0.5
    assert "| f | Swap | 2 | 1.000 / 0.000 | 0.500 ± 0.707 |" in family_tables.render_seed_table(
        {"over_seeds": summary, "seeds": [0, 1]})


def test_auc_ranks_by_rank_key_while_log_loss_stays_on_the_clipped_score():
    """Six fakes and six reals whose raw scores are in the right order, but all beyond the clip: on the clipped
    score every video ties (AUC 0.5); ranked by ``raw`` the order is kept (AUC 1), the log loss unchanged."""
    raws = 1 - 1e-4 * np.arange(1, 13)
    rows = [{"family": "f", "fold": "f", "label": int(i < 6), "raw": r, "score": min(r, 0.99), "method": "m"}
            for i, r in enumerate(raws)]
    clipped = family_tables.family_table(rows, resamples=30)["families"]["f"]
    ranked = family_tables.family_table(rows, resamples=30, rank_key="raw")
    entry = ranked["families"]["f"]
    assert clipped["auc"] == 0.5 and entry["auc"] == 1.0 and entry["auc_95ci"] == [1.0, 1.0]
    assert entry["log_loss"] == clipped["log_loss"] and entry["log_loss_95ci"] == clipped["log_loss_95ci"]
    assert ranked["methods"]["f"]["m"]["auc"] == 1.0
