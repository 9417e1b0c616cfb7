import cv2
import numpy as np
import pytest

from deepfake_kernel.pipeline.faces import Face, Track
from deepfake_kernel.pipeline.temporal import (TemporalCue, cue_pairs, face_ellipse, flow_maps, flow_residual,
                                               learned_cue, pair_flow, pairs_cue, residual_image, video_cue)
from tests import synthetic


def moving_face(flicker: float, n: int = 6, seed: int = 0):
    """Consecutive frames of the astronaut moving smoothly; with ``flicker``, noise of that strength re-drawn inside
    the face every frame (a face re-rendered frame by frame). Returns frames, next frames by position, tracks."""
    frames, boxes = synthetic.face_frames(n=2 * n, width=320, height=240, face_height=150)
    rng = np.random.default_rng(seed)
    if flicker:
        for frame, placed in zip(frames, boxes):
            x1, y1, x2, y2 = placed[0]
            inner = frame[y1 + 30:y2 - 20, x1 + 20:x2 - 20].astype(float)
            frame[y1 + 30:y2 - 20, x1 + 20:x2 - 20] = np.clip(inner + rng.normal(0, flicker, inner.shape), 0, 255)
    sampled, following = frames[0::2], {k: frames[2 * k + 1] for k in range(n)}
    track = Track(0, [Face(k, np.array(boxes[2 * k][0], np.float32), 0.99, None) for k in range(n)])
    return sampled, following, [track]


def test_face_ellipse_lies_inside_the_face_box_of_the_crop():
    mask = face_ellipse(np.array([100, 50, 200, 170]), margin=0.3, size=224)
    ys, xs = np.nonzero(mask)
    # the box is 100 x 120 px in a 156 px crop: its ellipse spans 100/156 and 120/156 of the 224 px side
    assert xs.max() - xs.min() == pytest.approx(224 * 100 / 156, abs=3)
    assert ys.max() - ys.min() == pytest.approx(224 * 120 / 156, abs=3)
    assert face_ellipse(np.array([100, 50, 200, 170]), 0.3, shrink=0.5).sum() == pytest.approx(mask.sum() / 4, rel=0.1)


def test_flow_explains_smooth_motion_but_not_flicker():
    frames, following, (track,) = moving_face(0)
    mask = face_ellipse(track.faces[0].box, 0.3)
    from deepfake_kernel.pipeline.faces import square_crop
    crop = lambda image: square_crop(image, track.faces[0].box, 0.3, 224)  # noqa: E731
    smooth = flow_residual(crop(frames[0]), crop(following[0]), mask)
    assert flow_residual(crop(frames[0]), crop(frames[0]), mask) is None  # a repeated frame says nothing
    flickering, flicker_next, _ = moving_face(12)
    noisy = flow_residual(crop(flickering[0]), crop(flicker_next[0]), mask)
    assert smooth < 0.15 and noisy > 2 * smooth


def test_video_cue_rises_with_flicker_and_needs_pairs():
    smooth = video_cue(*moving_face(0))
    mild, strong = video_cue(*moving_face(4)), video_cue(*moving_face(16))
    assert smooth < mild < strong
    frames, _, tracks = moving_face(0)
    assert video_cue(frames, {}, tracks) is None
    assert video_cue(frames, {0: frames[0]}, []) is None


def test_the_manifest_entry_round_trips_and_names_its_member_set():
    cue = TemporalCue(weight=2.5, reference=-0.5, positions=8, members=("a", "b"))
    assert TemporalCue.from_manifest(cue.entry()) == cue
    assert TemporalCue.parse(cue.describe()) == TemporalCue(2.5, -0.5, 8)
    assert TemporalCue.from_manifest(None) is None and TemporalCue.from_manifest({"weight": 0}) is None
    assert cue.applies_to(["b", "a"]) and not cue.applies_to(["a"])
    assert cue.adjust_logit(1.0, 0.5) == pytest.approx(1.0 + 2.5) and cue.adjust_logit(1.0, None) == 1.0


def test_a_residual_image_is_what_flow_leaves_of_a_pair_read_as_r_over_32():
    from deepfake_kernel.detectors import create_model

    frames, following, tracks = moving_face(0)
    (face, first, second), *rest = cue_pairs(frames, following, tracks)
    assert first.shape == second.shape == (224, 224, 3) and len(rest) == len(frames) - 1
    assert np.array_equal(first, cue_pairs(frames, {0: following[0]}, tracks)[0][1])
    same = residual_image(first, first)
    assert same.dtype == np.uint8 and np.abs(same.astype(int) - 128).max() <= 1
    moved = residual_image(first, second).astype(int) - 128
    unwarped = np.clip(4 * (first.astype(int) - second.astype(int)), -128, 127)
    assert np.abs(moved).mean() < 0.5 * np.abs(unwarped).mean()  # the motion is taken out
    network = create_model("temporal_residual_lite0")
    read = network.preprocess(residual_image(first, second)[None]).numpy()[0].transpose(1, 2, 0)
    assert read == pytest.approx(moved / 128.0, abs=1e-5)  # = (first - warp(second)) / 32


def test_the_learned_cue_is_the_networks_mean_logit_and_moves_with_flicker():
    import torch

    from deepfake_kernel.detectors import create_model

    torch.manual_seed(0)
    networks = [create_model("temporal_residual_lite0").eval(), create_model("temporal_residual_lite0").eval()]
    smooth = learned_cue(networks, cue_pairs(*moving_face(0)))
    flicker = learned_cue(networks, cue_pairs(*moving_face(16)))
    assert smooth is not None and flicker is not None and abs(flicker - smooth) > 1e-3
    alone = [learned_cue(networks[k:k + 1], cue_pairs(*moving_face(0))) for k in (0, 1)]
    assert smooth == pytest.approx(np.mean(alone), abs=1e-5)
    frames, _, tracks = moving_face(0)
    assert learned_cue(networks, cue_pairs(frames, {}, tracks)) is None and learned_cue([], [(None, 1, 2)]) is None


def test_both_cues_share_one_flow_per_pair_and_read_the_same_values():
    import torch

    from deepfake_kernel.detectors import create_model

    torch.manual_seed(0)
    networks = [create_model("temporal_residual_lite0").eval()]
    pairs = cue_pairs(*moving_face(16))
    flows = [pair_flow(first, second) for _, first, second in pairs]
    grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32) for x in pairs[0][1:]]
    assert all(np.array_equal(a, b) for a, b in zip(flows[0], flow_maps(*grey)))  # the flow cue's float grey alike
    assert pairs_cue(pairs, flows=flows) == pairs_cue(pairs) is not None
    assert learned_cue(networks, pairs, flows) == learned_cue(networks, pairs)
    still = [np.mgrid[0:224, 0:224][::-1].astype(np.float32)] * len(pairs)  # maps that warp nothing: they are used
    _, first, second = pairs[0]
    assert np.array_equal(residual_image(first, second, tuple(still[0])),
                          np.clip(4 * (first.astype(int) - second.astype(int)) + 128, 0, 255).astype(np.uint8))
    assert pairs_cue(pairs, flows=[tuple(m) for m in still]) > pairs_cue(pairs)


def test_a_cue_with_networks_round_trips_and_adds_both_terms():
    cue = TemporalCue(2.5, -0.5, 8, ("a",), networks=("n0", "n1"), network_weight=0.5, network_reference=-2.0)
    assert TemporalCue.from_manifest(cue.entry()) == cue
    assert "networks" not in TemporalCue(2.5, -0.5).entry()
    assert cue.adjust_logit(1.0, 0.5, -1.0) == pytest.approx(1.0 + 2.5 + 0.5)
    assert cue.adjust_logit(1.0, None, -1.0) == pytest.approx(1.5) and cue.adjust_logit(1.0, 0.5) == 3.5


@pytest.fixture(scope="module")
def cue_weights(tiny_weights, tmp_path_factory):
    """The tiny members with a temporal cue in their calibration, for the efficientnet_lite0 + resnet50 set."""
    import shutil

    from deepfake_kernel.detectors.weights import read_manifest, write_manifest

    root = tmp_path_factory.mktemp("cue_weights") / "weights"
    shutil.copytree(tiny_weights, root)
    manifest = read_manifest(root)
    manifest.calibration["temporal_cue"] = TemporalCue(2.0, -1.0, 4, ("efficientnet_lite0", "resnet50")).entry()
    write_manifest(manifest, root)
    return root


def test_predict_adds_the_cue_to_the_logit_for_its_member_set_only(cue_weights, tiny_weights, video_dir, tmp_path,
                                                                   capsys):
    import csv

    from deepfake_kernel import predict
    from deepfake_kernel.pipeline.detector import Detector
    from deepfake_kernel.pipeline.ensemble import logit

    detector = Detector.from_weights(cue_weights, device="cpu", frames=6)
    pair = ["efficientnet_lite0", "resnet50"]
    result = detector.predict_video(video_dir / "one_face.mp4", models=pair)
    assert result.reason is None and result.temporal_cue is not None and "temporal" in result.timings
    assert logit(result.raw_score) - logit(result.network_score) == pytest.approx(2.0 * (result.temporal_cue + 1.0),
                                                                                  abs=1e-4)
    alone = detector.predict_video(video_dir / "one_face.mp4", models=["efficientnet_lite0"])
    assert alone.temporal_cue is None and alone.network_score is None  # another set: its own calibration, no cue
    with pytest.raises(ValueError, match="carries no temporal cue"):
        Detector.from_weights(tiny_weights, device="cpu", temporal_cue=True)
    off = Detector.from_weights(cue_weights, device="cpu", frames=6, temporal_cue=False)
    assert off.predict_video(video_dir / "one_face.mp4", models=pair).temporal_cue is None
    details = tmp_path / "details.csv"
    assert predict.main([str(video_dir), "--weights", str(cue_weights), "--out", str(tmp_path / "s.csv"), "--frames",
                         "6", "--models", ",".join(pair), "--details", str(details), "--no-progress"]) == 0
    assert "temporal cue: 2 videos (weight 2, for the member set efficientnet_lite0+resnet50)" in capsys.readouterr().out
    rows = {r["filename"]: r for r in csv.DictReader(open(details))}
    assert float(rows["one_face.mp4"]["temporal_cue"]) == pytest.approx(result.temporal_cue, abs=1e-4)
    assert rows["no_face.mp4"]["temporal_cue"] == "" and rows["corrupt.mp4"]["temporal_cue"] == ""


def test_the_paired_reading_round_trips_and_halves_the_positions():
    cue = TemporalCue(2.5, -0.666, 8, ("a",), paired=True)
    assert TemporalCue.from_manifest(cue.entry()) == cue and cue.entry()["paired"] is True
    assert TemporalCue.parse(cue.describe()).paired and "paired" not in TemporalCue(1.0, 0.0).entry()
    assert cue.reading(16) == (8, 8) and cue.reading(1) == (1, 1)
    assert TemporalCue(1.0, 0.0, 8).reading(32) == (32, 8)


def test_a_paired_track_gets_each_faces_box_cut_from_the_next_frame():
    from deepfake_kernel.pipeline.faces import add_next_frame_faces, square_crop

    frames, following, (track,) = moving_face(0, n=4)
    for face in track.faces:
        face.crop = square_crop(frames[face.frame], face.box, 0.3, 64)
    del following[3]  # the last position's next frame was past the end
    (paired,) = add_next_frame_faces([track], following, 0.3, 64)
    assert [f.frame for f in paired.faces] == [0, 0, 1, 1, 2, 2, 3]
    assert paired.faces[1].crop.shape == (64, 64, 3)
    assert np.array_equal(paired.faces[1].crop, square_crop(following[0], track.faces[0].box, 0.3, 64))
    assert not np.array_equal(paired.faces[1].crop, paired.faces[0].crop)  # the face moved between the two
    assert len(track.faces) == 4  # the input is left as it was


@pytest.fixture(scope="module")
def paired_weights(cue_weights, tmp_path_factory):
    """``cue_weights`` plus the light member's own calibration with a paired cue."""
    import shutil

    from deepfake_kernel.detectors.weights import read_manifest, write_manifest

    root = tmp_path_factory.mktemp("paired_weights") / "weights"
    shutil.copytree(cue_weights, root)
    manifest = read_manifest(root)
    manifest.calibration_by_members["efficientnet_lite0"] = {
        "temperature": 1.0, "bias": 0.0, "clip": [0.01, 0.99],
        "temporal_cue": TemporalCue(1.0, -1.0, 3, ("efficientnet_lite0",), paired=True).entry()}
    write_manifest(manifest, root)
    return root


def test_a_member_set_with_a_paired_cue_reads_positions_and_scores_both_frames(paired_weights, video_dir, tmp_path,
                                                                               capsys):
    from deepfake_kernel import predict
    from deepfake_kernel.pipeline.detector import Detector
    from deepfake_kernel.pipeline.ensemble import logit

    detector = Detector.from_weights(paired_weights, device="cpu", frames=6)
    light = detector.predict_video(video_dir / "one_face.mp4", models=["efficientnet_lite0"])
    assert light.reason is None and light.frames_read == 3  # 6 frames: 3 positions and their next frames
    assert light.faces == 6 and len(light.tracks[0].frames) == 6  # one face, scored on both frames of each pair
    assert logit(light.raw_score) - logit(light.network_score) == pytest.approx(1.0 * (light.temporal_cue + 1.0),
                                                                                abs=1e-4)
    pair = detector.predict_video(video_dir / "one_face.mp4", models=["efficientnet_lite0", "resnet50"])
    assert pair.frames_read == 6 and pair.faces == 6  # the main cue: 6 frames, 4 of them paired for the cue alone
    assert pair.temporal_cue is not None
    assert predict.main([str(video_dir), "--weights", str(paired_weights), "--out", str(tmp_path / "s.csv"),
                         "--preset", "light", "--no-progress"]) == 0
    assert ("weight 1, for the member set efficientnet_lite0, paired frames)" in capsys.readouterr().out)


@pytest.fixture(scope="module")
def learned_cue_weights(tiny_weights, tmp_path_factory):
    """The tiny members plus a residual-reading network, named by the manifest's temporal cue."""
    import shutil

    import torch

    from deepfake_kernel.detectors import create_model
    from deepfake_kernel.detectors.weights import export_member, read_manifest, write_manifest

    root = tmp_path_factory.mktemp("learned_cue_weights") / "weights"
    shutil.copytree(tiny_weights, root)
    torch.manual_seed(0)
    export_member(create_model("temporal_residual_lite0"), root, name="temporal_residual", ensemble_weight=0.0,
                  reads="residual")
    manifest = read_manifest(root)
    manifest.calibration["temporal_cue"] = TemporalCue(2.0, -1.0, 4, ("efficientnet_lite0", "resnet50"),
                                                       networks=("temporal_residual",), network_weight=0.5,
                                                       network_reference=0.25).entry()
    write_manifest(manifest, root)
    return root


def test_predict_adds_the_learned_cue_of_the_manifests_network(learned_cue_weights, video_dir, tmp_path, capsys):
    import csv

    from deepfake_kernel import predict
    from deepfake_kernel.detectors.weights import WeightsError
    from deepfake_kernel.pipeline.detector import Detector
    from deepfake_kernel.pipeline.ensemble import logit

    detector = Detector.from_weights(learned_cue_weights, device="cpu", frames=6)
    assert sorted(detector.members) == ["efficientnet_lite0", "resnet50", "xception"]  # not a face member
    assert list(detector.cue_networks) == ["temporal_residual"]
    pair = ["efficientnet_lite0", "resnet50"]
    result = detector.predict_video(video_dir / "one_face.mp4", models=pair)
    assert result.temporal_cue is not None and result.learned_cue is not None
    assert logit(result.raw_score) - logit(result.network_score) == pytest.approx(
        2.0 * (result.temporal_cue + 1.0) + 0.5 * (result.learned_cue - 0.25), abs=1e-4)
    with pytest.raises(WeightsError, match="reads face pairs"):
        Detector.from_weights(learned_cue_weights, device="cpu", models=["temporal_residual"])
    off = Detector.from_weights(learned_cue_weights, device="cpu", frames=6, temporal_cue=False)
    assert off.cue_networks == {} and off.predict_video(video_dir / "one_face.mp4", models=pair).learned_cue is None
    details = tmp_path / "details.csv"
    assert predict.main([str(video_dir), "--weights", str(learned_cue_weights), "--out", str(tmp_path / "s.csv"),
                         "--frames", "6", "--models", ",".join(pair), "--details", str(details), "--no-progress"]) == 0
    assert "learned cue of 1 network(s) at weight 0.5" in capsys.readouterr().out
    rows = {r["filename"]: r for r in csv.DictReader(open(details))}
    assert float(rows["one_face.mp4"]["learned_cue"]) == pytest.approx(result.learned_cue, abs=1e-4)
    assert rows["no_face.mp4"]["learned_cue"] == "" and rows["corrupt.mp4"]["learned_cue"] == ""


def test_a_cue_naming_a_network_the_manifest_lacks_fails_early(cue_weights, tmp_path):
    import shutil

    from deepfake_kernel.detectors.weights import WeightsError, read_manifest, write_manifest
    from deepfake_kernel.pipeline.detector import Detector

    root = tmp_path / "weights"
    shutil.copytree(cue_weights, root)
    manifest = read_manifest(root)
    manifest.calibration["temporal_cue"]["networks"] = ["missing_network"]
    manifest.calibration["temporal_cue"]["network_weight"] = 0.5
    write_manifest(manifest, root)
    with pytest.raises(WeightsError, match="missing_network"):
        Detector.from_weights(root, device="cpu")


def test_the_light_member_sets_paired_cue_adds_the_learned_cue_on_its_own_pairs(learned_cue_weights, video_dir,
                                                                                tmp_path):
    """The light preset's reading (a member set's paired cue) can name the learned cue's network too: it reads the
    set's own pairs (3 positions and their next frames) and adds its term to the set's logit, the main cue's networks
    and weight apart."""
    import shutil

    from deepfake_kernel.detectors.weights import read_manifest, write_manifest
    from deepfake_kernel.pipeline.detector import Detector
    from deepfake_kernel.pipeline.ensemble import logit

    root = tmp_path / "weights"
    shutil.copytree(learned_cue_weights, root)
    manifest = read_manifest(root)
    manifest.calibration_by_members["efficientnet_lite0"] = {
        "temperature": 1.0, "bias": 0.0, "clip": [0.01, 0.99],
        "temporal_cue": TemporalCue(1.0, -1.0, 3, ("efficientnet_lite0",), paired=True,
                                    networks=("temporal_residual",), network_weight=3.0,
                                    network_reference=-0.5).entry()}
    write_manifest(manifest, root)
    detector = Detector.from_weights(root, device="cpu", frames=6)
    light = detector.predict_video(video_dir / "one_face.mp4", models=["efficientnet_lite0"])
    assert light.frames_read == 3 and light.faces == 6  # the paired reading
    assert light.temporal_cue is not None and light.learned_cue is not None
    assert logit(light.raw_score) - logit(light.network_score) == pytest.approx(
        1.0 * (light.temporal_cue + 1.0) + 3.0 * (light.learned_cue + 0.5), abs=1e-4)
    unweighted = read_manifest(root)
    unweighted.calibration_by_members["efficientnet_lite0"]["temporal_cue"]["network_weight"] = 0.0
    write_manifest(unweighted, root)
    same = Detector.from_weights(root, device="cpu", frames=6).predict_video(
        video_dir / "one_face.mp4", models=["efficientnet_lite0"])
    assert same.learned_cue == pytest.approx(light.learned_cue, abs=1e-5)  # read on the same pairs
    assert logit(same.raw_score) - logit(same.network_score) == pytest.approx(1.0 * (same.temporal_cue + 1.0),
                                                                              abs=1e-4)


def test_the_shipped_light_preset_reads_the_learned_cue_of_a_shipped_network(shipped_weights, video_dir, tmp_path):
    """The shipped manifest's light calibration names a residual-reading network it holds, and ``predict --preset
    light`` records that network's cue for a video with a face (none for a video without one)."""
    import csv

    from deepfake_kernel import predict
    from deepfake_kernel.detectors.weights import read_manifest

    manifest = read_manifest(shipped_weights)
    light = TemporalCue.from_manifest(manifest.calibration_by_members["efficientnet_lite0"]["temporal_cue"])
    assert light.paired and light.networks and light.network_weight > 0
    for name in light.networks:
        assert manifest.member(name).input == "residual"
    details = tmp_path / "details.csv"
    assert predict.main([str(video_dir), "--weights", str(shipped_weights), "--out", str(tmp_path / "s.csv"),
                         "--preset", "light", "--details", str(details), "--no-progress"]) == 0
    rows = {r["filename"]: r for r in csv.DictReader(open(details))}
    assert rows["one_face.mp4"]["learned_cue"] not in ("", None)
    assert rows["no_face.mp4"]["learned_cue"] == ""
