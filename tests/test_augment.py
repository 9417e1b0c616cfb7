import cv2
import numpy as np
import pytest

from deepfake_kernel.pipeline.faces import square_crop
from deepfake_kernel.training.augment import (FAKE, FLIP_ORDER, REAL, AugmentConfig, FaceAugmenter, estimated_landmarks,
                                              face_ellipse_points, face_feature_mask, feature_mask, fwa_pseudo_fake,
                                              horizontal_flip, hull_mask, h264_recompress, jpeg_recompress, low_quality,
                                              self_blend_pseudo_fake)
from tests import synthetic

SIZE = 160
NOTHING = dict(flip=0.0, color=0.0, blur=0.0, jpeg=0.0, crop_scale=(1.0, 1.0), rotate=0.0,
               face_feature_mask=0.0, fwa=0.0, sbi=0.0)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture(scope="module")
def face():
    """The astronaut crop, its MTCNN box and its 5 MTCNN landmarks."""
    from facenet_pytorch import MTCNN

    image = synthetic.face_crop(SIZE)
    boxes, probs, points = MTCNN(keep_all=True, post_process=False).detect(image, landmarks=True)
    assert boxes is not None and probs[0] > 0.9
    return image, np.asarray(boxes[0], np.float64), np.asarray(points[0], np.float64)


def border(shape_hw, width=20):
    """Mask of the crop's outer frame, far from the face."""
    mask = np.ones(shape_hw, bool)
    mask[width:-width, width:-width] = False
    return mask


def mean_abs_diff(a, b, where):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).sum(-1)[where].mean())


def test_nothing_enabled_returns_the_image_unchanged(face):
    image, _, landmarks = face
    out, label = FaceAugmenter(AugmentConfig(**NOTHING))(image, landmarks, REAL, rng(0))
    assert label == REAL and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("with_landmarks", [True, False])
def test_same_seed_same_output_other_seed_other_output(face, with_landmarks):
    image, _, landmarks = face
    augmenter = FaceAugmenter(AugmentConfig(fwa=0.3, sbi=0.3, rotate=0.5, blur=0.5))
    marks = landmarks if with_landmarks else None
    outputs = [augmenter(image, marks, REAL, rng(seed)) for seed in (0, 0, 1, 2, 3)]
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    assert outputs[0][1] == outputs[1][1]
    assert all(not np.array_equal(outputs[0][0], other[0]) for other in outputs[2:])
    for out, label in outputs:
        assert out.shape == image.shape and out.dtype == np.uint8 and out.flags.c_contiguous
        assert label in (REAL, FAKE)


def test_odd_sized_non_square_input_keeps_its_shape(face):
    image = cv2.resize(face[0], (97, 83))
    augmenter = FaceAugmenter(AugmentConfig(fwa=0.5, sbi=0.5, rotate=0.5, face_feature_mask=0.5, blur=0.5))
    for seed in range(6):
        out, _ = augmenter(image, None, REAL, rng(seed))
        assert out.shape == image.shape and out.dtype == np.uint8 and out.flags.c_contiguous


@pytest.mark.parametrize("kind", ["fwa", "sbi"])
def test_pseudo_fake_turns_real_into_fake_and_leaves_fake_alone(face, kind):
    image, _, landmarks = face
    augmenter = FaceAugmenter(AugmentConfig(**{**NOTHING, kind: 1.0}))
    out, label = augmenter(image, landmarks, REAL, rng(0))
    assert label == FAKE and not np.array_equal(out, image)
    out, label = augmenter(image, landmarks, FAKE, rng(0))
    assert label == FAKE
    np.testing.assert_array_equal(out, image)  # FAKE samples never get a pseudo-fake


def test_real_stays_real_without_pseudo_fakes(face):
    image, _, landmarks = face
    augmenter = FaceAugmenter(AugmentConfig())
    assert all(augmenter(image, landmarks, REAL, rng(seed))[1] == REAL for seed in range(5))


@pytest.mark.parametrize("make_fake", [fwa_pseudo_fake, self_blend_pseudo_fake])
def test_pseudo_fake_changes_the_face_not_the_background(face, make_fake):
    image, _, landmarks = face
    inner_face = hull_mask(image.shape[:2], landmarks, 0).astype(bool)
    outer_frame = border(image.shape[:2])
    outputs = []
    for seed in range(4):
        out = make_fake(image, landmarks, rng(seed))
        assert out.shape == image.shape and out.dtype == np.uint8 and out.flags.c_contiguous
        inside, outside = mean_abs_diff(out, image, inner_face), mean_abs_diff(out, image, outer_frame)
        assert inside > 3.0 and inside > 10 * outside, (seed, inside, outside)
        outputs.append(out)
    np.testing.assert_array_equal(outputs[0], make_fake(image, landmarks, rng(0)))
    assert not np.array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("make_fake", [fwa_pseudo_fake, self_blend_pseudo_fake])
def test_pseudo_fake_without_landmarks_targets_the_crop_centre(face, make_fake):
    image = face[0]
    centre = np.zeros(image.shape[:2], bool)
    centre[60:100, 60:100] = True
    for seed in range(3):
        out = make_fake(image, None, rng(seed))
        assert mean_abs_diff(out, image, centre) > 10 * mean_abs_diff(out, image, border(image.shape[:2]))


def test_estimated_landmarks_match_mtcnn_on_a_30_percent_margin_crop(face):
    image, box, landmarks = face
    crop = square_crop(image, box, margin=0.3, size=SIZE)
    side = max(box[2] - box[0], box[3] - box[1]) * 1.3
    corner = np.round([(box[0] + box[2] - side) / 2, (box[1] + box[3] - side) / 2])
    in_crop = (landmarks - corner) * SIZE / round(side)
    assert crop.shape == (SIZE, SIZE, 3)
    error = np.linalg.norm(estimated_landmarks((SIZE, SIZE)) - in_crop, axis=1)
    assert error.max() < 0.08 * SIZE, error


def test_face_feature_mask_keeps_features_and_blacks_out_the_rest(face):
    image, _, landmarks = face
    out = face_feature_mask(image, landmarks, rng(0), mode="all")
    keep = feature_mask(image.shape[:2], landmarks, rng(0), mode="all").astype(bool)
    np.testing.assert_array_equal(out[keep], image[keep])
    assert not out[~keep].any()
    for x, y in np.round(landmarks).astype(int):
        assert keep[y, x]  # every landmark lies in a kept feature
    assert 0.02 < keep.mean() < 0.3
    n_parts, _ = cv2.connectedComponents(keep.astype(np.uint8))
    assert n_parts - 1 >= 3  # two eyes apart from each other and from nose/mouth
    assert not keep[border(image.shape[:2])].any()


def test_face_feature_mask_is_contained_in_the_dilated_landmark_hull(face):
    image, _, landmarks = face
    iod = np.linalg.norm(landmarks[1] - landmarks[0])
    around = hull_mask(image.shape[:2], landmarks, int(0.5 * iod)).astype(bool)
    for seed in range(6):
        for mode in ("three", "interval", None):
            out = face_feature_mask(image, landmarks, rng(seed), mode=mode)
            kept = out.any(-1)
            assert kept.any() and not kept[~around].any()
            assert np.all((out == image) | (out == 0))


def test_face_feature_mask_modes(face):
    image, _, landmarks = face
    everything = feature_mask(image.shape[:2], landmarks, rng(0), "all").astype(bool)
    threes = [feature_mask(image.shape[:2], landmarks, rng(s), "three").astype(bool) for s in range(6)]
    assert all(not m[~everything].any() and m.sum() < everything.sum() for m in threes)
    assert len({m.tobytes() for m in threes}) > 1
    for seed in range(6):
        interval = feature_mask(image.shape[:2], landmarks, rng(seed), "interval")
        assert cv2.connectedComponents(interval)[0] == 2  # one convex region
    with pytest.raises(ValueError):
        feature_mask(image.shape[:2], landmarks, rng(0), "ears")


def test_horizontal_flip_swaps_left_and_right(face):
    image, _, landmarks = face
    flipped, moved = horizontal_flip(image, landmarks)
    np.testing.assert_array_equal(flipped, image[:, ::-1])
    np.testing.assert_allclose(moved[1, 0], SIZE - 1 - landmarks[0, 0])  # the left eye is now on the right
    np.testing.assert_allclose(moved[[0, 1, 2, 3, 4], 1], landmarks[[1, 0, 2, 4, 3], 1])
    assert moved[0, 0] < moved[1, 0] and moved[3, 0] < moved[4, 0]


def test_landmarks_follow_crop_flip_and_rotation(face):
    """A dot drawn at each landmark ends up where the returned landmark says."""
    _, _, landmarks = face
    augmenter = FaceAugmenter(AugmentConfig(**{**NOTHING, "flip": 1.0, "rotate": 1.0, "crop_scale": (0.7, 0.9)}))
    for seed in range(3):
        _, moved, _ = augmenter.augment(np.zeros((SIZE, SIZE, 3), np.uint8), landmarks, REAL, rng(seed))
        assert moved[0, 0] < moved[1, 0]
        for k, source in enumerate(FLIP_ORDER):
            dot = np.zeros((SIZE, SIZE, 3), np.uint8)
            cv2.circle(dot, tuple(int(v) for v in np.round(landmarks[source])), 3, (255, 255, 255), -1)
            shift = landmarks[source] - np.round(landmarks[source])
            out, dot_landmarks, _ = augmenter.augment(dot, landmarks - shift, REAL, rng(seed))
            weight = out[..., 0].astype(np.float64)
            ys, xs = np.indices(weight.shape)
            centroid = np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()
            assert np.linalg.norm(centroid - dot_landmarks[k]) < 1.0, (seed, k, centroid, dot_landmarks[k])


def test_jpeg_recompression_differs_slightly(face):
    image = face[0]
    out = jpeg_recompress(image, rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(np.int16) - image).mean()
    assert 0 < diff < 6
    via_augmenter, _ = FaceAugmenter(AugmentConfig(**{**NOTHING, "jpeg": 1.0}))(image, None, REAL, rng(0))
    assert 0 < np.abs(via_augmenter.astype(np.int16) - image).mean() < 6
    # Colour order survives the BGR round trip: a red image stays red.
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    assert jpeg_recompress(red, rng(0))[..., 0].mean() > 150


def test_low_quality_removes_fine_detail_and_is_off_by_default(face):
    image = face[0]
    out = low_quality(image, rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8

    def detail(x):
        return cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()

    assert detail(out) < 0.5 * detail(image)  # downscaled and blocky: most fine detail gone
    assert np.abs(out.astype(np.int16) - image).mean() < 25  # still the same face
    assert abs(float(out.mean()) - float(image.mean())) < 5
    degraded, _ = FaceAugmenter(AugmentConfig(**{**NOTHING, "degrade": 1.0}))(image, None, REAL, rng(0))
    assert detail(degraded) < 0.5 * detail(image)
    # degrade 0 draws nothing, so a recipe without it keeps the random stream it had before the option existed:
    # a tiny probability (one draw, never applied) leaves its generator exactly one draw ahead
    off, tiny = rng(5), rng(5)
    FaceAugmenter(AugmentConfig(degrade=0.0))(image, None, REAL, off)
    FaceAugmenter(AugmentConfig(degrade=1e-12))(image, None, REAL, tiny)
    off.random()
    assert off.random() == tiny.random()


def test_h264_round_trip_blocks_fine_detail_and_is_off_by_default(face):
    image = face[0]
    light = h264_recompress(image, rng(0), crf=(23, 23), scale=(1.0, 1.0))
    heavy = h264_recompress(image, rng(0), crf=(40, 40), scale=(1.0, 1.0))
    assert light.shape == heavy.shape == image.shape and heavy.dtype == np.uint8
    error_light = np.abs(light.astype(np.int16) - image).mean()
    error_heavy = np.abs(heavy.astype(np.int16) - image).mean()
    assert 0 < error_light < error_heavy < 25  # the codec really ran; a higher CRF loses more; still the same face
    assert abs(float(heavy.mean()) - float(image.mean())) < 5  # colours survive the yuv420p round trip
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 200
    assert h264_recompress(red, rng(1))[..., 0].mean() > 150
    np.testing.assert_array_equal(h264_recompress(image, rng(3)), h264_recompress(image, rng(3)))  # seeded
    odd = h264_recompress(image[:101, :77], rng(2))  # odd sides in, the same sides out
    assert odd.shape == (101, 77, 3)
    coded, _ = FaceAugmenter(AugmentConfig(**{**NOTHING, "h264": 1.0}))(image, None, REAL, rng(0))
    assert np.abs(coded.astype(np.int16) - image).mean() > 0
    off, tiny = rng(5), rng(5)  # h264 0 draws nothing: older recipes keep their random stream
    FaceAugmenter(AugmentConfig(h264=0.0))(image, None, REAL, off)
    FaceAugmenter(AugmentConfig(h264=1e-12))(image, None, REAL, tiny)
    off.random()
    assert off.random() == tiny.random()


def test_hull_mask_fills_and_dilates():
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30]])
    plain = hull_mask((50, 50), square, 0)
    grown = hull_mask((50, 50), square, 3)
    assert plain.dtype == np.uint8 and set(np.unique(plain)) == {0, 1}
    assert plain[20, 20] == 1 and plain[5, 5] == 0 and abs(int(plain.sum()) - 21 * 21) <= 1
    assert grown.sum() > plain.sum() and grown[8, 20] == 1 and plain[8, 20] == 0
    assert hull_mask((50, 50), np.array([[5, 25], [45, 25]]), 2)[25, 25] == 1  # a segment still marks pixels


def test_face_ellipse_covers_the_mtcnn_box(face):
    image, box, landmarks = face
    oval = hull_mask(image.shape[:2], face_ellipse_points(landmarks), 0).astype(bool)
    box_mask = np.zeros_like(oval)
    x1, y1, x2, y2 = np.round(box).astype(int)
    box_mask[y1:y2, x1:x2] = True
    overlap = (oval & box_mask).sum()
    assert overlap / oval.sum() > 0.9 and overlap / box_mask.sum() > 0.65


@pytest.fixture(scope="module")
def face68(face):
    from deepfake_kernel.training.landmarks import LandmarkModel

    image, box, landmarks = face
    points = LandmarkModel().points(image, box)
    return image, points, landmarks


def test_68_point_landmarks_agree_with_mtcnn(face68):
    image, points, mtcnn = face68
    assert points.shape == (68, 2)
    eyes = np.stack([points[36:42].mean(0), points[42:48].mean(0)])
    assert np.linalg.norm(eyes - mtcnn[:2], axis=1).max() < 0.05 * SIZE
    assert np.linalg.norm(points[30] - mtcnn[2]) < 0.08 * SIZE  # nose tip


def test_sbi_pair_differs_only_where_the_blend_is(face68):
    """Same post-processing on both: outside the (generously grown) face hull the two images agree."""
    from deepfake_kernel.training.augment import self_blend_68

    image, points, _ = face68
    augmenter = FaceAugmenter(AugmentConfig(**{**NOTHING, "flip": 1.0, "color": 1.0, "crop_scale": (0.9, 0.9)}))
    changed = 0
    for seed in range(6):
        real, fake = augmenter.sbi_pair(image, points, rng(seed))
        assert real.shape == fake.shape == image.shape
        # flipped and cropped the same way: the crop's frame, far from the face, is the same in both
        outside = np.abs(real.astype(int) - fake.astype(int)).max(-1)[border(image.shape[:2], 12)]
        assert outside.max() <= 3, seed
        changed += mean_abs_diff(real, fake, ~border(image.shape[:2], 40)) > 0.5
    assert changed >= 4  # the blend shows inside the face
    with pytest.raises(ValueError, match="68"):
        self_blend_68(image, points[:5], rng(0))


def test_cross_blend_puts_the_donor_face_where_the_target_face_is(face68):
    """A donor face (the astronaut moved, scaled and rotated, a dark mark on her nose) aligned by its 68 points:
    the mark lands on the target's nose, the frame far from the face is the target's, and the pair's real image is
    the target as it was."""
    from deepfake_kernel.training.augment import cross_blend_68

    image, points, _ = face68
    nose = np.rint(points[30]).astype(int)
    marked = image.copy()
    marked[nose[1] - 6:nose[1] + 7, nose[0] - 6:nose[0] + 7] = 0
    move = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 12.0, 0.8)
    move[:, 2] += (10, -6)
    donor = cv2.warpAffine(marked, move, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT_101)
    donor_points = points @ move[:, :2].T + move[:, 2]
    augmenter = FaceAugmenter(AugmentConfig(**NOTHING))
    patch = (slice(nose[1] - 3, nose[1] + 4), slice(nose[0] - 3, nose[0] + 4))
    for seed in range(5):
        fake = cross_blend_68(image, points, donor, donor_points, rng(seed))
        assert fake.shape == image.shape and fake.dtype == np.uint8
        assert np.abs(fake.astype(int) - image.astype(int)).max(-1)[border(image.shape[:2], 12)].max() == 0
        assert image[patch].mean() - fake[patch].mean() > 15, seed  # the donor's mark, on the target's nose
        real, paired = augmenter.sbi_pair(image, points, rng(seed), donor=(donor, donor_points))
        np.testing.assert_array_equal(real, image)
        np.testing.assert_array_equal(paired, fake)
    with pytest.raises(ValueError, match="68"):
        cross_blend_68(image, points, donor, donor_points[:5], rng(0))


def test_blend_boundary_is_where_the_images_mix():
    from deepfake_kernel.training.augment import blend_boundary

    mask = np.array([[0.0, 0.25, 0.5, 0.75, 1.0]], np.float32)
    np.testing.assert_allclose(blend_boundary(mask), [[0.0, 0.75, 1.0, 0.75, 0.0]])


def test_sbi_pair_boundary_moves_with_the_faces(face68):
    """The map of a pair follows its crop and flip, peaks at 1 on the blend's edge and is 0 far from the face."""
    image, points, _ = face68
    plain = FaceAugmenter(AugmentConfig(**NOTHING))
    flipped = FaceAugmenter(AugmentConfig(**{**NOTHING, "flip": 1.0}))
    for seed in range(4):
        real, fake, boundary = plain.sbi_pair(image, points, rng(seed), with_boundary=True)
        real_f, fake_f, boundary_f = flipped.sbi_pair(image, points, rng(seed), with_boundary=True)
        np.testing.assert_array_equal(fake_f, fake[:, ::-1])
        np.testing.assert_allclose(boundary_f, boundary[:, ::-1], atol=1e-6)
        assert boundary.shape == image.shape[:2] and boundary.dtype == np.float32
        assert boundary.max() > 0.9 and boundary[border(image.shape[:2], 12)].max() == 0.0
        # the boundary is a band, not the whole face: inside the face, past the band, pixels come from one image
        assert (boundary > 0.5).mean() < 0.5
        # the same pair as without the map: asking for it changes no image
        np.testing.assert_array_equal(plain.sbi_pair(image, points, rng(seed))[1], fake)
    cropped = FaceAugmenter(AugmentConfig(**{**NOTHING, "crop_scale": (0.7, 0.7)}))
    _, _, boundary_c = cropped.sbi_pair(image, points, rng(0), with_boundary=True)
    _, _, boundary = plain.sbi_pair(image, points, rng(0), with_boundary=True)
    assert not np.allclose(boundary_c, boundary)  # the crop moved (and scaled) the map


def test_a_wavering_self_blend_blends_both_frames_and_differs_between_them(face68):
    """The two frames of a still real face get a blend each, inside the face only, and not the same one: that
    difference is what the learned temporal cue learns to see (flow cannot explain it)."""
    from deepfake_kernel.training.augment import wavering_self_blend

    image, points, _ = face68
    between = []
    for seed in range(4):
        first, second = wavering_self_blend(image, image.copy(), points, rng(seed))
        assert first.shape == second.shape == image.shape and first.dtype == np.uint8
        for blended in (first, second):
            assert np.abs(blended.astype(int) - image.astype(int))[border(image.shape[:2], 12)].max() <= 3
        between.append(mean_abs_diff(first, second, ~border(image.shape[:2], 40)))
    assert max(between) > 0.3  # the same input frame twice, yet the blends differ
    with pytest.raises(ValueError, match="68 landmarks"):
        wavering_self_blend(image, image, points[:5], rng(0))


def test_a_frozen_self_blend_keeps_the_first_frame_and_gives_the_second_its_texture_moved(face68):
    """The second frame's inner face becomes the first's moved onto it by the flow: what flow leaves of the pair
    inside the face shrinks (a texture too steady), while the border keeps the second frame's own pixels."""
    import cv2

    from deepfake_kernel.pipeline.temporal import residual_image
    from deepfake_kernel.training.augment import frozen_self_blend

    image, points, _ = face68
    noise = np.random.default_rng(1).normal(0, 6, image.shape)
    moved = cv2.warpAffine(image, np.float32([[1, 0, 1], [0, 1, 0]]), image.shape[1::-1],
                           borderMode=cv2.BORDER_REFLECT_101)
    second = np.clip(moved + noise, 0, 255).astype(np.uint8)  # the face moved 1 px, with its own sensor noise
    inner = ~border(image.shape[:2], 60)
    plain = np.abs(residual_image(image, second).astype(float) - 128)[inner].mean()
    for seed in range(3):
        first, frozen = frozen_self_blend(image, second, points, rng(seed))
        assert np.array_equal(first, image)
        assert np.abs(frozen.astype(int) - second.astype(int))[border(image.shape[:2], 12)].max() <= 3
        assert np.abs(residual_image(first, frozen).astype(float) - 128)[inner].mean() < 0.8 * plain
    with pytest.raises(ValueError, match="68 landmarks"):
        frozen_self_blend(image, second, points[:5], rng(0))


def test_pair_jitter_gives_both_frames_one_look(face68):
    """A pair's two frames get the same crop, contrast, brightness and resolution: a still face stays still (its
    frames stay equal) while the look moves with the seed; the same seed gives the same look."""
    from deepfake_kernel.training.augment import pair_jitter

    image = face68[0]
    looks = []
    for seed in range(6):
        first, second = pair_jitter(image, image.copy(), rng(seed))
        assert first.shape == image.shape and first.dtype == np.uint8
        assert np.array_equal(first, second)  # one look on both: nothing the video did not change
        looks.append(np.abs(first.astype(int) - image.astype(int)).mean())
        again = pair_jitter(image, image.copy(), rng(seed))
        assert np.array_equal(again[0], first)
    assert min(looks) > 1 and len({round(v, 3) for v in looks}) == 6  # each seed its own look, never the input
    with pytest.raises(ValueError, match="one shape"):
        pair_jitter(image, image[:-2], rng(0))
