import json

import numpy as np
import pytest

from deepfake_kernel.pipeline.runner import PredictConfig
from deepfake_kernel.pipeline.stage_config import CropperConfig
from deepfake_kernel.training import engine
from deepfake_kernel.training.data import (CacheConfig, CropCache, VideoItem, fingerprint, read_dfdc_folder,
                                           read_video_csv, split_by_group)
from tests import synthetic


def test_split_is_by_group_deterministic_and_stratified():
    items = [VideoItem(f"v{g}_{k}.mp4", label, f"g{g}") for g in range(20) for k, label in enumerate([0, 1])]
    items += [VideoItem(f"r{g}.mp4", 0, f"r{g}") for g in range(10)]
    train, val = split_by_group(items, 0.3, seed=3)
    assert {i.group for i in train}.isdisjoint({i.group for i in val})
    assert split_by_group(items, 0.3, seed=3) == (train, val)
    assert split_by_group(items, 0.3, seed=4) != (train, val)
    assert {i.label for i in val} == {0, 1} and len({i.group for i in val}) == 6 + 3


def test_dfdc_metadata_groups_fakes_with_their_original(tmp_path, shared_data):
    folder = tmp_path / "dfdc_part"
    folder.mkdir()
    (folder / "metadata.json").write_text((shared_data / "dfdc" / "train_sample_videos_metadata.json").read_text())
    items = read_dfdc_folder(folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert len(items) == len(metadata)
    by_name = {i.path.rsplit("/", 1)[1]: i for i in items}
    fake = next(n for n, m in metadata.items() if m["label"] == "FAKE" and m["original"] in metadata)
    assert by_name[fake].label == 1 and by_name[fake].group == by_name[metadata[fake]["original"]].group
    train, val = split_by_group(items, 0.3)
    assert {i.group for i in train}.isdisjoint({i.group for i in val})


def test_video_csv_and_fingerprint(shared_data):
    items = read_video_csv(shared_data / "videos.csv")
    assert len(items) == 147 and sum(i.label for i in items) == 62
    assert all((shared_data / "videos").as_posix() in i.path for i in items)
    changed = [VideoItem(items[0].path, 1 - items[0].label, items[0].group)] + items[1:]
    assert fingerprint(items) == fingerprint(list(reversed(items))) != fingerprint(changed)


def test_cache_builds_resumes_and_skips(tmp_path, training_videos):
    csv_path, _ = training_videos
    items = read_video_csv(csv_path)[:3]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope" * 100)
    items.append(VideoItem(bad.as_posix(), 0, "bad"))
    cache = CropCache(tmp_path / "cache", CacheConfig(frames=4, crop_size=64, cropper=CropperConfig(detect_long_side=480)))
    counts = cache.build(items, progress=False)
    assert counts == {"cached": 0, "new": 3, "skipped": 1, "skipped_before": 0}
    assert cache.skipped() == {items[-1].key: "decode_failed"}
    samples = cache.load_videos(items)
    assert samples.crops.shape == (12, 64, 64, 3) and len(samples.videos) == 3
    assert not np.isnan(samples.landmarks).any()
    # a kill halfway: one cached file lost, a temporary file left behind → the rebuild redoes only that video
    cache.video_file(items[1]).unlink()
    (cache.video_file(items[1]).parent / ".junk.npz").write_bytes(b"half")
    assert cache.build(items, progress=False) == {"cached": 2, "new": 1, "skipped": 0, "skipped_before": 1}


def test_training_crops_are_cut_with_predicts_cropper_settings():
    predict_defaults = PredictConfig()
    cache = CacheConfig(frames=predict_defaults.frames, crop_size=224)
    assert cache.cropper == CropperConfig(detect_long_side=predict_defaults.detect_long_side,
                                          min_prob=predict_defaults.min_face_prob, margin=predict_defaults.margin,
                                          max_faces=predict_defaults.max_faces,
                                          min_face_size=predict_defaults.min_face_size,
                                          detect_every=predict_defaults.detect_every,
                                          batch_size=predict_defaults.batch_size,
                                          min_track_size_ratio=predict_defaults.bystander_ratio)
    assert cache.tag() == "f32_s224_d1000_m0.3_k2"  # the folder earlier caches were written to
    assert CacheConfig(cropper=CropperConfig(detect_every=4)).tag().endswith("_detect_every4")


def test_the_cache_keeps_a_bystander_and_the_monitor_leaves_it_out_as_predict_does(tmp_path):
    video = tmp_path / "bystander.mp4"
    synthetic.write_video(video, synthetic.bystander_frames(n=8))
    item = VideoItem(video.as_posix(), 0, "g")
    cache = CropCache(tmp_path / "cache", CacheConfig(frames=4, crop_size=64,
                                                       cropper=CropperConfig(detect_long_side=800)))
    cache.build([item], progress=False)
    samples = cache.load_videos([item])
    assert len(np.unique(samples.track)) == 2  # training sees both faces...
    scored = samples.scored_by_predict()
    assert scored.any() and not scored.all() and len(np.unique(samples.track[scored])) == 1
    # ...the in-domain monitor scores the video by its main face only, as predict does
    probs = np.where(scored, 0.1, 0.9)
    _, _, video_scores = engine.video_metrics(probs, samples)
    assert video_scores == pytest.approx([0.1])


def test_a_fake_videos_bystander_can_be_left_out_of_the_labelled_fakes(tmp_path):
    video = tmp_path / "bystander.mp4"
    synthetic.write_video(video, synthetic.bystander_frames(n=8))
    items = [VideoItem(video.as_posix(), 1, "g")]
    cache = CropCache(tmp_path / "cache", CacheConfig(frames=4, crop_size=64,
                                                       cropper=CropperConfig(detect_long_side=800)))
    cache.build(items, progress=False)
    fake = cache.load_videos(items, landmarks68=True)
    marked = fake.fake_bystanders()
    assert np.array_equal(marked, ~fake.scored_by_predict())  # in a FAKE video every bystander face is marked
    kept = fake.select(~marked)
    assert len(kept) == (~marked).sum() > 0 and len(np.unique(kept.track)) == 1
    assert np.array_equal(kept.crops, fake.crops[~marked]) and kept.landmarks68.shape == (len(kept), 68, 2)
    assert not kept.bystander.any() and kept.videos == fake.videos and (kept.labels == 1).all()
    # a REAL video's background face is a real face: nothing is marked
    real = cache.load_videos([VideoItem(video.as_posix(), 0, "g")])
    assert not real.fake_bystanders().any() and (~real.scored_by_predict()).any()


def test_loose_crops_only_real_drops_the_fake_rows(tmp_path):
    import cv2
    from skimage import data as skdata

    face = cv2.cvtColor(skdata.astronaut()[:220, 140:330], cv2.COLOR_RGB2BGR)
    rows = ["path,label"]
    for k, label in enumerate(["REAL", "FAKE", "FAKE", "REAL", "FAKE"]):
        cv2.imwrite(str(tmp_path / f"c{k}.jpg"), np.roll(face, 7 * k, axis=1))
        rows.append(f"c{k}.jpg,{label}")
    (tmp_path / "crops.csv").write_text("\n".join(rows) + "\n")
    cache = CropCache(tmp_path / "cache", CacheConfig(frames=4, crop_size=64))
    everything = cache.load_crop_csv(tmp_path / "crops.csv", progress=False)
    real = cache.load_crop_csv(tmp_path / "crops.csv", progress=False, only_real=True)
    assert everything.labels.tolist() == [0, 1, 1, 0, 1]
    assert real.labels.tolist() == [0, 0]
    assert np.array_equal(real.crops, everything.crops[[0, 3]])
    assert cache.load_crop_csv(tmp_path / "crops.csv", limit=1, progress=False, only_real=True).labels.tolist() == [0]
