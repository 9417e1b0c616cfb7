import numpy as np
import pytest

from deepfake_kernel.pipeline.faces import (Face, FaceCropper, Track, box_iou, box_sides, drop_bystanders, link_tracks,
                                            square_crop)
from tests import synthetic


@pytest.fixture(scope="module")
def cropper():
    return FaceCropper(detect_long_side=400, crop_size=96, max_faces=3)


def test_finds_the_face_where_it_was_pasted(cropper):
    frames, boxes = synthetic.face_frames(n=6)
    detections = cropper.detect(frames)
    assert all(len(d) == 1 for d in detections)
    for found, placed in zip(detections, boxes):
        x1, y1, x2, y2 = placed[0]
        cx, cy = (found[0].box[0] + found[0].box[2]) / 2, (found[0].box[1] + found[0].box[3]) / 2
        assert x1 < cx < x2 and y1 < cy < y2  # detection on downscaled frames mapped back to full size
        assert found[0].prob >= 0.9 and found[0].landmarks.shape == (5, 2)


def test_one_person_gives_one_track_of_crops(cropper):
    frames, _ = synthetic.face_frames(n=8)
    tracks = cropper(frames)
    assert len(tracks) == 1 and len(tracks[0].faces) == 8
    assert tracks[0].crops().shape == (8, 96, 96, 3)


def test_two_people_give_two_tracks(cropper):
    frames, boxes = synthetic.face_frames(n=8, width=800, faces=2)
    tracks = cropper(frames)
    assert len(tracks) == 2
    lefts = sorted(np.mean([f.box[0] for f in t.faces]) for t in tracks)
    assert lefts[0] < 400 < lefts[1]  # each track follows one person
    assert all(len(t.faces) == 8 for t in tracks)


def test_a_small_background_face_is_dropped_as_a_bystander():
    frames = synthetic.bystander_frames()
    every = FaceCropper(detect_long_side=800, crop_size=64, max_faces=3, min_track_size_ratio=0)(frames)
    assert len(every) == 2  # both faces are found and tracked...
    main = FaceCropper(detect_long_side=800, crop_size=64, max_faces=3)(frames)
    assert len(main) == 1  # ...but by default only the main one is kept
    sides = [np.median(box_sides(np.stack([f.box for f in t.faces]))) for t in every]
    assert np.median(box_sides(np.stack([f.box for f in main[0].faces]))) == pytest.approx(max(sides))
    assert max(sides) > 2 * min(sides)


def _track(track_id: int, side: float, n: int = 4) -> Track:
    return Track(track_id, [Face(i, np.array([10.0, 10.0, 10.0 + side, 10.0 + side]), 0.99, None) for i in range(n)])


def test_two_subjects_of_a_size_both_stay():
    tracks = [_track(0, 100), _track(1, 80), _track(2, 45)]
    assert [t.track_id for t in drop_bystanders(tracks)] == [0, 1]  # 45 < half of 100
    assert [t.track_id for t in drop_bystanders(tracks, 0.4)] == [0, 1, 2]
    assert [t.track_id for t in drop_bystanders(tracks, 0)] == [0, 1, 2]
    assert drop_bystanders([_track(0, 5)]) and drop_bystanders([]) == []


def test_predict_and_the_cropper_share_the_bystander_threshold():
    from deepfake_kernel.pipeline.faces import BYSTANDER_SIZE_RATIO
    from deepfake_kernel.pipeline.stage_config import CropperConfig

    assert CropperConfig().min_track_size_ratio == BYSTANDER_SIZE_RATIO


def test_max_faces_limits_tracks():
    frames, _ = synthetic.face_frames(n=4, width=800, faces=2)
    assert len(FaceCropper(detect_long_side=400, crop_size=64, max_faces=1)(frames)) == 1


def test_frames_without_faces_do_not_break_the_batch(cropper):
    frames, _ = synthetic.face_frames(n=6, width=320, height=240, face_height=120)
    frames[1] = synthetic.noise_frames(1)[0]
    frames[4] = 0
    detections = cropper.detect(frames)
    assert [len(d) for d in detections] == [1, 0, 1, 1, 0, 1]
    tracks = cropper(frames)
    assert len(tracks) == 1 and [f.frame for f in tracks[0].faces] == [0, 2, 3, 5]


def test_no_face_gives_no_track(cropper):
    assert cropper(synthetic.noise_frames(4)) == []


def test_square_crop_pads_outside_the_frame():
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = square_crop(frame, np.array([-20.0, -20.0, 20.0, 20.0]), margin=0.0, size=40)
    assert crop.shape == (40, 40, 3)
    assert crop[:10, :10].max() == 0 and crop[-5:, -5:].min() == 200


def test_linking_by_iou():
    def face(frame, x):
        return Face(frame, np.array([x, 0.0, x + 50, 50]), 0.99, None)

    per_frame = [[face(0, 0), face(0, 300)], [face(1, 305), face(1, 6)], [face(2, 12)]]
    tracks = link_tracks(per_frame)
    assert len(tracks) == 2
    assert [f.box[0] for f in tracks[0].faces] == [0, 6, 12]
    assert box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10])) == pytest.approx(1 / 3)


def test_detecting_every_third_frame_interpolates_the_track():
    frames, boxes = synthetic.face_frames(n=10)
    every = FaceCropper(detect_long_side=400, crop_size=64, detect_every=3)
    tracks = every(frames)
    assert len(tracks) == 1 and [f.frame for f in tracks[0].faces] == list(range(10))
    for face, placed in zip(tracks[0].faces, boxes):
        x1, y1, x2, y2 = placed[0]
        cx = (face.box[0] + face.box[2]) / 2
        assert x1 < cx < x2  # interpolated boxes follow the moving face
    assert set(every.last_timings) == {"detect", "crop"}
