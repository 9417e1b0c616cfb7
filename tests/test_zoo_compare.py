"""The zoo comparison's stacking test (evaluation/zoo.py): an entry that carries what the members miss helps, noise
does not; folds keep whole groups."""
import numpy as np

from deepfake_kernel.evaluation import zoo


def videos(n=80, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.float64)
    groups = [f"g{i // 2}" for i in range(n)]  # two videos per group
    base = (0.3 * (2 * labels - 1) + rng.normal(0, 1.0, n))[:, None]  # a weak member
    return labels, groups, base, rng


def test_folds_keep_groups_whole_and_mix_classes():
    labels, groups, _, _ = videos()
    folds = zoo.stratified_group_folds(labels, groups, 4, seed=0)
    for group in set(groups):
        assert len({folds[i] for i, g in enumerate(groups) if g == group}) == 1
    for fold in range(4):
        assert 0 < labels[folds == fold].mean() < 1


def test_an_informative_entry_helps_and_noise_does_not():
    labels, groups, base, rng = videos()
    informative = 3.0 * (2 * labels - 1) + rng.normal(0, 1.0, len(labels))
    noise = rng.normal(0, 1.0, len(labels))
    good = zoo.stacking_gain(base, informative, labels, groups, ["member"], repeats=4, resamples=500)
    bad = zoo.stacking_gain(base, noise, labels, groups, ["member"], repeats=4, resamples=500)
    assert good["helps"] and good["delta_log_loss"] < -0.1 and good["auc_with"] > good["auc_without"] + 0.1
    assert not bad["helps"] and bad["bootstrap_share_better"] < 0.9


def test_command_line_keeps_the_config_defaults_and_applies_what_is_given():
    from deepfake_kernel.zoo_compare import build_parser

    from deepfake_kernel.config import from_args

    config = from_args(zoo.ZooCompareConfig, build_parser().parse_args(["--runs", "a,b", "--folds", "3"]))
    assert config.runs == ["a", "b"] and config.folds == 3
    assert config.repeats == zoo.ZooCompareConfig().repeats and config.out == zoo.ZooCompareConfig().out
