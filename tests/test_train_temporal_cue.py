import csv

import numpy as np
import pytest

from deepfake_kernel import train_temporal_cue
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv
from deepfake_kernel.training.temporal import stored_pairs


@pytest.fixture(scope="module")
def cached_families(training_videos, tmp_path_factory):
    """The 8 training clips as two families, their faces cached (4 frames, 64 px) as train caches them."""
    csv_path, root = training_videos
    out = root / "temporal_families.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label", "group", "family"])
        writer.writeheader()
        for row in csv.DictReader(open(csv_path)):
            writer.writerow({**row, "family": "alpha" if row["group"] in ("g0", "g1") else "beta"})
    cache_dir = tmp_path_factory.mktemp("temporal_cache")
    cache = CropCache(cache_dir, CacheConfig(frames=4, crop_size=64))
    assert cache.build(read_video_csv(out), progress=False)["new"] == 8
    return out, cache_dir, cache


def options(csv_path, cache_dir, *extra):
    return ["--videos", str(csv_path), "--cache-dir", str(cache_dir), "--cache-frames", "4", "--cache-size", "64",
            "--positions", "2", "--epochs", "1", "--samples", "4", "--batch-size", "2", "--log-level", "WARNING",
            *extra]


def test_pairs_are_predicts_crops_of_two_consecutive_frames_with_landmarks(cached_families):
    csv_path, _, cache = cached_families
    item = read_video_csv(csv_path)[0]
    first, second, marks = stored_pairs(cache, cache.config.reader.build("cpu"), item, positions=2)
    assert first.shape == second.shape and first.shape[1:] == (224, 224, 3) and 1 <= len(first) <= 2
    assert marks.shape == (len(first), 68, 2) and marks.min() > 0 and marks.max() < 224
    assert 0 < np.abs(first.astype(int) - second.astype(int)).mean() < 20  # the next frame: the face moved a little
    again = stored_pairs(cache, None, item, positions=2)  # kept beside the crops: no reader needed
    assert np.array_equal(again[0], first) and np.array_equal(again[2], marks)


def test_a_fold_scores_only_the_families_it_never_trained_on(cached_families, tmp_path, capsys):
    csv_path, cache_dir, _ = cached_families
    scores = tmp_path / "alpha.csv"
    assert train_temporal_cue.main(options(csv_path, cache_dir, "--hold-out-family", "alpha",
                                           "--scores", str(scores))) == 0
    rows = list(csv.DictReader(open(scores)))
    assert len(rows) == 4 and {r["family"] for r in rows} == {"alpha"}
    assert all(r["learned_cue"] not in ("", "None") for r in rows)
    assert len({round(float(r["learned_cue"]), 5) for r in rows}) > 1  # a score per video, not a constant
    assert '"real_videos": 2' in capsys.readouterr().out  # beta's two REAL clips
    assert not (tmp_path / "weights").exists()


def test_without_a_held_out_family_the_network_is_exported_as_a_residual_reader(cached_families, tmp_path, capsys):
    from deepfake_kernel.detectors.weights import load_member, read_manifest, select_members

    csv_path, cache_dir, _ = cached_families
    out = tmp_path / "weights"
    assert train_temporal_cue.main(options(csv_path, cache_dir, "--out", str(out), "--name", "tcue")) == 0
    entry = read_manifest(out).member("tcue")
    assert entry.input == "residual" and entry.ensemble_weight == 0.0 and entry.detector == "temporal_residual_lite0"
    assert "train_temporal_cue" in entry.training_command and entry.training["real_videos"] == 4
    assert load_member(entry, out).spec.name == "temporal_residual_lite0" and entry.storage_dtype == "float16"
    assert entry.metrics["storage_fidelity"]["max_abs_cue_difference"] < 0.05  # float16 keeps the cue
    with pytest.raises(Exception, match="no members"):  # a manifest of the cue's network alone has no face member
        select_members(read_manifest(out), None)
    assert train_temporal_cue.main(options(csv_path, cache_dir, "--hold-out-family", "alpha")) == 2
    assert "--scores" in capsys.readouterr().err
    assert train_temporal_cue.main(options(csv_path, cache_dir, "--hold-out-family", "gamma", "--scores",
                                           str(tmp_path / "g.csv"))) == 2
    assert "no cached video of that family" in capsys.readouterr().err


def test_a_killed_run_resumes_from_its_last_epoch_to_the_same_network(cached_families, tmp_path, monkeypatch):
    import torch

    from deepfake_kernel.training import temporal

    csv_path, _, cache = cached_families
    first, second, marks = stored_pairs(cache, cache.config.reader.build("cpu"), read_video_csv(csv_path)[0],
                                        positions=2)
    videos = [{"first": first, "second": second, "marks": marks}]
    config = temporal.TemporalCueConfig(epochs=2, samples=4, batch_size=2, work_dir=str(tmp_path / "work"))
    torch.manual_seed(0)
    straight = temporal.build_network(config)
    temporal.train_network(straight, videos, config, progress=lambda text: None)

    real_sample, calls = temporal.training_sample, []

    def killed_in_the_second_epoch(*args):
        calls.append(1)
        if len(calls) == 6:  # step 3 of 4: epoch 1's checkpoint is written, epoch 2 is under way
            raise KeyboardInterrupt
        return real_sample(*args)

    monkeypatch.setattr(temporal, "training_sample", killed_in_the_second_epoch)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        temporal.train_network(temporal.build_network(config), videos, config, progress=lambda text: None)
    assert torch.load(tmp_path / "work" / "last.pt", weights_only=False)["step"] == 2
    monkeypatch.setattr(temporal, "training_sample", real_sample)
    resumed = temporal.build_network(config)
    said = []
    temporal.train_network(resumed, videos, temporal.TemporalCueConfig(**{**config.__dict__, "resume": True}),
                           progress=said.append)
    assert said[0] == "resumed at step 2/4"
    for (name, a), b in zip(straight.network.state_dict().items(), resumed.network.state_dict().values()):
        assert torch.equal(a, b), name
    other = temporal.TemporalCueConfig(**{**config.__dict__, "resume": True, "lr": 1e-3})
    with pytest.raises(ValueError, match="other settings"):
        temporal.train_network(temporal.build_network(config), videos, other, progress=lambda text: None)


def test_labelled_fakes_replace_the_asked_share_of_self_blends_and_a_second_stage_starts_from_a_checkpoint(
        cached_families, tmp_path, monkeypatch, capsys):
    import torch

    from deepfake_kernel.training import temporal

    csv_path, cache_dir, cache = cached_families
    items = read_video_csv(csv_path)
    reader = cache.config.reader.build("cpu")
    pairs = [stored_pairs(cache, reader, item, positions=2) for item in items]
    real = [{"first": p[0], "second": p[1], "marks": p[2]} for p, i in zip(pairs, items) if i.label == 0]
    fake = [{"first": p[0], "second": p[1], "marks": p[2]} for p, i in zip(pairs, items) if i.label == 1]
    assert real and fake
    seen = []
    real_sample = temporal.training_sample
    monkeypatch.setattr(temporal, "training_sample",
                        lambda first, second, marks, blend, rng, *rest: seen.append(blend) or
                        real_sample(first, second, marks, blend, rng, *rest))
    config = temporal.TemporalCueConfig(epochs=1, samples=8, batch_size=4, fake_source="sbi+real", real_fake_share=1.0,
                                        work_dir=str(tmp_path / "stage1"))
    model = temporal.build_network(config)
    temporal.train_network(model, real, config, progress=lambda text: None, fakes=fake)
    assert len(seen) == 8 and not any(seen)  # share 1: no self-blend, every FAKE a labelled one
    seen.clear()
    temporal.train_network(temporal.build_network(config), real,
                           temporal.TemporalCueConfig(epochs=1, samples=8, batch_size=4), progress=lambda text: None,
                           fakes=fake)
    assert sum(seen) == 4  # sbi: the FAKE half self-blended, labelled fakes unused
    second = temporal.build_network(temporal.TemporalCueConfig(init_from=str(tmp_path / "stage1" / "last.pt")))
    for a, b in zip(model.network.state_dict().values(), second.network.state_dict().values()):
        assert torch.equal(a, b)
    assert train_temporal_cue.main(options(csv_path, cache_dir, "--out", str(tmp_path / "w"), "--fake-source",
                                           "real")) == 2
    assert "sbi or sbi+real" in capsys.readouterr().err


def test_pair_jitter_changes_the_samples_only_when_asked(cached_families):
    """``--pair-jitter 0`` draws nothing more from the random stream (earlier networks rebuild exactly); a share of 1
    gives every pair a look, so the residuals the network reads differ."""
    from deepfake_kernel.training import temporal

    csv_path, _, cache = cached_families
    item = [i for i in read_video_csv(csv_path) if i.label == 0][0]
    first, second, marks = stored_pairs(cache, cache.config.reader.build("cpu"), item, positions=2)
    for fake in (False, True):
        plain = temporal.training_sample(first[0], second[0], marks[0], fake, np.random.default_rng(3))
        off = temporal.training_sample(first[0], second[0], marks[0], fake, np.random.default_rng(3), jitter=0.0)
        on = temporal.training_sample(first[0], second[0], marks[0], fake, np.random.default_rng(3), jitter=1.0)
        assert np.array_equal(plain, off) and not np.array_equal(plain, on) and on.shape == plain.shape


def test_a_share_outside_zero_to_one_fails_early(cached_families, tmp_path, capsys):
    csv_path, cache_dir, _ = cached_families
    assert train_temporal_cue.main(options(csv_path, cache_dir, "--out", str(tmp_path / "w"), "--pair-jitter",
                                           "1.5")) == 2
    assert "--pair-jitter must lie in [0, 1]" in capsys.readouterr().err


def test_a_finished_fold_is_scored_again_at_other_positions_without_training(cached_families, tmp_path):
    """``--score-positions`` scores the held-out videos on as many pairs as predict would read; ``--resume`` of a
    finished fold trains nothing and scores again: the same network gives the same scores at the same positions,
    other scores at other positions."""
    csv_path, cache_dir, _ = cached_families
    work = str(tmp_path / "work")

    def scores(name, *extra):
        path = tmp_path / name
        assert train_temporal_cue.main(options(csv_path, cache_dir, "--positions", "1", "--hold-out-family", "alpha",
                                               "--scores", str(path), "--work-dir", work, *extra)) == 0
        return {r["path"]: float(r["learned_cue"]) for r in csv.DictReader(open(path))}

    four = scores("four.csv", "--score-positions", "4")  # three pairs a clip (the last frame has no next one)
    again = scores("again.csv", "--score-positions", "4", "--resume")
    one = scores("one.csv", "--resume")
    assert len(four) == 4 and four == again
    assert one.keys() == four.keys() and all(abs(one[k] - four[k]) > 1e-6 for k in one)
    assert train_temporal_cue.main(options(csv_path, cache_dir, "--out", str(tmp_path / "w"), "--score-positions",
                                           "-1")) == 2


def test_a_checkpoint_from_before_an_option_existed_resumes_while_the_option_keeps_its_default():
    from deepfake_kernel.training.temporal import TemporalCueConfig

    config = TemporalCueConfig(videos=["a.csv"], epochs=4)
    older = {k: v for k, v in config.resume_key().items() if k != "pair_jitter"}  # saved before --pair-jitter
    assert config.resumes(config.resume_key()) and config.resumes(older)
    assert not TemporalCueConfig(videos=["a.csv"], epochs=4, pair_jitter=0.5).resumes(older)
    assert not TemporalCueConfig(videos=["a.csv"], epochs=5).resumes(older)
    assert TemporalCueConfig(videos=["a.csv"], epochs=4, score_positions=16).resumes(config.resume_key())
