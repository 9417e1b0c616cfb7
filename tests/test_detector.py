import numpy as np
import pytest
import torch

from deepfake_kernel.pipeline.detector import Detector
from deepfake_kernel.pipeline.video import sample_indices


@pytest.fixture(scope="module")
def detector(tiny_weights):
    return Detector.from_weights(tiny_weights, device="cpu", frames=6, detect_long_side=480)


@pytest.fixture
def sensitive_detector(tiny_weights):
    """Members whose classifier weights are scaled up, so untrained members give input-dependent scores."""
    detector = Detector.from_weights(tiny_weights, device="cpu", frames=6, detect_long_side=480)
    for model in detector.members.values():
        head = model.network.get_classifier()
        with torch.no_grad():
            head.weight.mul_(200.0 / head.weight.norm())
            head.bias.zero_()
    detector.clipper.lo, detector.clipper.hi = 0.0, 1.0
    return detector


def test_one_face_video_is_scored(detector, video_dir):
    result = detector.predict_video(video_dir / "one_face.mp4")
    assert result.reason is None and result.reader == "decord"
    assert result.frames_read == 6 and result.faces == 6 and len(result.tracks) == 1
    assert set(result.member_scores) == {"xception", "resnet50", "efficientnet_lite0"}
    assert 0.01 <= result.score <= 0.99
    assert result.tracks[0].frames == list(range(6))


def test_two_faces_give_two_tracks(detector, video_dir):
    result = detector.predict_video(video_dir / "two_faces.mp4")
    assert result.reason is None and len(result.tracks) == 2
    assert result.raw_score == pytest.approx(max(t.score for t in result.tracks))


@pytest.mark.parametrize("name,reason", [("no_face.mp4", "no_face"), ("corrupt.mp4", "decode_failed"),
                                         ("absent.mp4", "missing_file")])
def test_bad_videos_fall_back_with_reason(detector, video_dir, name, reason):
    result = detector.predict_video(video_dir / name)
    assert result.reason == reason and result.score == 0.5


def test_member_subset_and_frame_count(detector, video_dir):
    result = detector.predict_video(video_dir / "one_face.mp4", frames=3, models=["efficientnet_lite0"])
    assert result.models == ("efficientnet_lite0",) and list(result.member_scores) == ["efficientnet_lite0"]
    assert result.frames_read == 3


def test_ensemble_follows_member_weights(sensitive_detector, video_dir):
    path = video_dir / "one_face.mp4"
    sensitive_detector.member_weights = {"xception": 0.0, "resnet50": 0.0, "efficientnet_lite0": 1.0}
    only_effnet = sensitive_detector.predict_video(path)
    assert only_effnet.raw_score == pytest.approx(only_effnet.member_scores["efficientnet_lite0"], abs=1e-6)


def test_scores_move_with_the_input(sensitive_detector, video_dir):
    a = sensitive_detector.predict_video(video_dir / "one_face.mp4")
    b = sensitive_detector.predict_video(video_dir / "two_faces.mp4")
    moved = [abs(a.member_scores[n] - b.member_scores[n]) for n in a.member_scores]
    assert max(moved) > 1e-3


def test_real_videos_from_shared_data(detector, shared_data):
    import csv

    rows = list(csv.DictReader(open(shared_data / "videos.csv")))
    picks = [next(r for r in rows if r["dataset"].startswith("FaceForensics++ c40") and r["label"] == "FAKE"),
             next(r for r in rows if r["dataset"].startswith("MEAD")),
             next(r for r in rows if r["dataset"].startswith("EDTalk demo"))]
    for row in picks:
        result = detector.predict_video(shared_data / row["path"], frames=4)
        assert result.reason is None, (row["path"], result.notes)
        assert result.faces >= 3 and len(result.tracks) >= 1
        crop_frames = result.tracks[0].frames
        assert crop_frames == sorted(crop_frames)


def test_decoding_several_videos_ahead_reads_each_once_and_changes_no_score(sensitive_detector, video_dir,
                                                                            monkeypatch):
    """The light preset decodes the next two videos while one is scored, each on one FFmpeg thread: every video is
    still decoded once, and every score is the one a video read on its own gets."""
    from pathlib import Path

    names = ["one_face.mp4", "two_faces.mp4", "no_face.mp4", "corrupt.mp4"]
    alone = {n: sensitive_detector.predict_video(video_dir / n) for n in names}
    reads, real = [], sensitive_detector.reader.read
    monkeypatch.setattr(sensitive_detector.reader, "read", lambda path, n, pairs=0, threads=0: reads.append(
        (Path(path).name, threads)) or real(path, n, pairs, threads))
    ahead = {}
    for index, name in enumerate(names):
        sensitive_detector.prefetch([video_dir / n for n in names[index + 1:index + 3]])
        ahead[name] = sensitive_detector.predict_video(video_dir / name)
    sensitive_detector.close()
    assert sorted(reads) == [("corrupt.mp4", 1), ("no_face.mp4", 1), ("one_face.mp4", 0), ("two_faces.mp4", 1)]
    assert {n: (p.raw_score, p.reason) for n, p in ahead.items()} == {n: (p.raw_score, p.reason)
                                                                       for n, p in alone.items()}
    assert ahead["one_face.mp4"].raw_score != ahead["two_faces.mp4"].raw_score
    assert ahead["corrupt.mp4"].reason == alone["corrupt.mp4"].reason is not None
