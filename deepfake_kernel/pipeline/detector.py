"""The video → score pipeline: frame reader → face cropper → members → ensemble → clipper.

``Detector`` is the public Python API (for notebooks)::

    detector = Detector.from_weights("weights")
    result = detector.predict_video("clip.mp4")
    result.score, result.member_scores, result.tracks, result.reason

``predict_video`` never raises for a bad video: it returns the fallback score with ``reason`` set. With a
``timeout`` (``predict`` always sets one) the work runs in a worker thread that is abandoned when it overruns
(see :mod:`.watchdog`); the reason then names the stage that hung: ``decode_timeout``, ``detect_timeout``,
``classify_timeout``. Running out of memory in detection or in a member retries with half the batch, down to
one, and only then falls back (``out_of_memory``); the smaller batch is kept for the following videos.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..detectors import FaceClassifier
from ..detectors.weights import Manifest, WeightsError, load_member, read_manifest, select_members
from ..device import resolve_device
from . import ensemble
from .faces import FaceCropper, Track, add_next_frame_faces
from .stage_config import CropperConfig, ReaderConfig
from .temporal import TemporalCue, cue_pairs, learned_cue, pair_flow, pairs_cue
from .video import FrameReader, VideoReadError
from .watchdog import StageTimeout, run_with_timeout

log = logging.getLogger(__name__)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm must never wait on a model hub

FALLBACK_SCORE = 0.5


@dataclass
class TrackResult:
    """One face track: which decoded frames it covers, its score and the members' scores."""

    track_id: int
    frames: list[int]
    detection_prob: float
    score: float
    member_scores: dict[str, float]


@dataclass
class VideoPrediction:
    """The outcome for one video; ``reason`` is set (and ``score`` is the fallback) when it could not be scored."""

    path: str
    score: float
    raw_score: float | None = None
    member_scores: dict[str, float] = field(default_factory=dict)
    tracks: list[TrackResult] = field(default_factory=list)
    frames_read: int = 0
    faces: int = 0
    reason: str | None = None
    seconds: float = 0.0
    reader: str = ""
    frames_requested: int = 0
    models: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    temporal_cue: float | None = None  # log flow residual (.temporal); raw_score includes its weight
    learned_cue: float | None = None  # the learned temporal cue's mean logit (.temporal.learned_cue); likewise
    network_score: float | None = None  # the members' raw score before the temporal cue

    @property
    def detection_prob(self) -> float:
        """Mean MTCNN probability over the tracks' faces (0 without a face)."""
        return float(np.mean([t.detection_prob for t in self.tracks])) if self.tracks else 0.0

    @property
    def fell_back(self) -> bool:
        return self.reason is not None


class Detector:
    """An ensemble of face classifiers behind a frame reader and a face cropper."""

    def __init__(self, members: dict[str, FaceClassifier], member_weights: dict[str, float],
                 clipper: ensemble.ProbabilityClipper, reader: FrameReader, cropper: FaceCropper,
                 frames: int = 32, batch_size: int = 16, fallback_score: float = FALLBACK_SCORE,
                 device: str = "cpu", manifest: Manifest | None = None, video_timeout: float | None = None,
                 strict: bool = False):
        if not members:
            raise ValueError("a Detector needs at least one member")
        self.members = members
        self.member_weights = member_weights
        self.clipper = clipper
        self.reader = reader
        self.cropper = cropper
        self.frames = frames
        self.batch_size = batch_size
        self.fallback_score = fallback_score
        self.device = device
        self.manifest = manifest
        self.video_timeout = video_timeout
        self.strict = strict  # an exception in a stage propagates instead of becoming a fallback row
        self._prefetch_pool = None
        self._prefetch_workers = 0
        self._prefetched: dict = {}
        self.test_set_norm: dict[str, int] = {}  # member → blocks whose BatchNorm statistics adapt (.adapt)
        self.test_set_center = False  # centre the scores on the run's median logit (.adapt.centre_scores)
        # a video scored by exactly one of these member sets gets that set's own calibration and clip
        self.member_set_clippers = {
            key: ensemble.ProbabilityClipper.from_fit(fit, manifest.clip)
            for key, fit in (manifest.calibration_by_members if manifest is not None else {}).items()}
        stacking = (manifest.stacking if manifest is not None else None) or {}
        self.stacker = (ensemble.Stacker.from_dict(stacking)
                        if stacking.get("use") and set(stacking.get("members", [])) <= set(members) else None)
        # the temporal cue was fitted with the main calibration (manifest calibration["temporal_cue"]), a member
        # set's own cue with that set's calibration (the light preset's paired reading)
        self.temporal_cue = TemporalCue.from_manifest(
            (manifest.calibration or {}).get("temporal_cue") if manifest is not None else None)
        by_members = manifest.calibration_by_members if manifest is not None else {}
        self.member_set_cues = {key: TemporalCue.from_manifest(fit.get("temporal_cue"))
                                for key, fit in by_members.items()}
        self.cue_networks: dict[str, FaceClassifier] = {}  # the learned cue's networks, by manifest name (from_weights)

    @classmethod
    def from_weights(cls, weights_dir: str | Path = "weights", device: str = "auto",
                     models: list[str] | None = None, frames: int = 32, batch_size: int = 16,
                     detect_long_side: int = 1000, max_faces: int = 2, margin: float = 0.3,
                     min_prob: float = 0.9, max_side: int = 1920, decode_timeout: float = 60.0,
                     fallback_score: float = FALLBACK_SCORE, video_timeout: float | None = None,
                     detect_every: int = 1, reader: str = "auto", compile_mode: str | None = None,
                     min_face_size: int = 24, strict: bool = False,
                     bystander_ratio: float = CropperConfig.min_track_size_ratio,
                     test_set_norm_blocks: int | None = None,
                     test_set_center: bool | None = None, temporal_cue: bool | None = None) -> "Detector":
        """Load and verify the members listed in ``weights_dir/manifest.json`` (``models`` picks a subset).

        ``reader`` picks the frame reader (see :class:`FrameReader`); ``compile_mode`` (``"default"``,
        ``"reduce-overhead"``, ``"max-autotune"``) runs the members through ``torch.compile``. ``strict`` lets an
        exception inside a stage propagate (for developing a member) instead of giving the fallback score.
        ``test_set_norm_blocks`` sets every member's test-set BatchNorm adaptation (:mod:`.adapt`; -1: off;
        ``None``: as the manifest says), kept in :attr:`test_set_norm` for the run to apply; likewise
        ``test_set_center`` (centring each video's logit on the run's median, :func:`.adapt.centre_scores`) in
        :attr:`test_set_center`. ``temporal_cue=False`` leaves out the manifest's temporal cue (:mod:`.temporal`;
        ``None`` or ``True``: as the manifest says). ``bystander_ratio``: tracks of faces smaller than this share of
        the largest track's are dropped (:func:`.faces.drop_bystanders`; 0 keeps every track).
        """
        device = resolve_device(device)
        manifest = read_manifest(weights_dir)
        entries = select_members(manifest, models)
        members = {e.name: load_member(e, weights_dir, device) for e in entries}
        weights = {e.name: e.ensemble_weight for e in entries}
        clipper = ensemble.ProbabilityClipper.from_manifest(manifest.clip, manifest.calibration)
        crop_size = max(m.input_size for m in members.values())
        if compile_mode:
            for name, member in members.items():
                if not getattr(member.spec, "sequence_length", 0):  # windows vary in shape: those stay eager
                    clock = time.perf_counter()
                    member.compile_network(None if compile_mode == "default" else compile_mode)
                    # compile now, on the padded batch shape every later call uses: not inside a video's watchdog
                    member.predict_proba(np.zeros((1, member.input_size, member.input_size, 3), np.uint8), batch_size)
                    log.info("%s compiled (%s) in %.1fs", name, compile_mode, time.perf_counter() - clock)
        reader = ReaderConfig(batch_size=batch_size, max_side=max_side, timeout=decode_timeout,
                              reader=reader).build(device)
        cropper = CropperConfig(detect_long_side=detect_long_side, min_prob=min_prob, margin=margin,
                                max_faces=max_faces, min_face_size=min_face_size, detect_every=detect_every,
                                batch_size=batch_size, min_track_size_ratio=bystander_ratio).build(crop_size, device)
        detector = cls(members, weights, clipper, reader, cropper, frames=frames, batch_size=batch_size,
                       fallback_score=fallback_score, device=device, manifest=manifest,
                       video_timeout=video_timeout, strict=strict)
        if test_set_norm_blocks is None:
            detector.test_set_norm = {e.name: e.test_set_norm_blocks for e in entries
                                      if e.test_set_norm_blocks is not None}
        elif test_set_norm_blocks >= 0:
            for name, member in members.items():
                try:
                    member.early_norm_layers(test_set_norm_blocks)
                except ValueError as exc:
                    raise ValueError(f"--test-set-norm-blocks {test_set_norm_blocks}: member {name}: {exc}; pick "
                                     f"members that can adapt with --models, or leave the option out") from None
            detector.test_set_norm = {name: test_set_norm_blocks for name in members}
        detector.test_set_center = (manifest.calibration.get("center") == "test_set_median"
                                    if test_set_center is None else bool(test_set_center))
        for cue in (detector.temporal_cue, *detector.member_set_cues.values()):
            for name in (cue.networks if cue is not None else ()):
                if name not in detector.cue_networks:
                    try:
                        entry = manifest.member(name)
                    except KeyError as exc:
                        raise WeightsError(f"the manifest's temporal cue names network {name!r}, which it does "
                                           f"not list among its members") from exc
                    detector.cue_networks[name] = load_member(entry, weights_dir, device)
        if temporal_cue is False:
            detector.temporal_cue = None
            detector.member_set_cues = {}
            detector.cue_networks = {}
        elif temporal_cue and detector.temporal_cue is None:
            raise ValueError(f"--temporal-cue: {weights_dir}/manifest.json carries no temporal cue (its calibration "
                             f"was fitted without one): leave the option out, or store a fit made with the cue "
                             f"(cross_family --temporal-cue-weight W --fit-calibration --calibrate-weights)")
        return detector

    @property
    def member_names(self) -> list[str]:
        return list(self.members)

    def clipper_for(self, models: list[str]) -> ensemble.ProbabilityClipper:
        """The calibration and clip for a video scored by ``models``: the manifest's fit for exactly that member
        set when there is one (the light preset's single member is not calibrated like the ensemble mean), else
        the main one."""
        return self.member_set_clippers.get(ensemble.member_set_key(models), self.clipper)

    def cue_for(self, models: list[str]) -> TemporalCue | None:
        """The temporal cue of a video scored by ``models``: the cue stored with that member set's own calibration
        where it has one (``None`` where that fit has none), else the main one where it applies to the set."""
        key = ensemble.member_set_key(models)
        if key in self.member_set_clippers:
            return self.member_set_cues.get(key)
        cue = self.temporal_cue
        return cue if cue is not None and cue.applies_to(models) else None

    def reading(self, models: list[str], frames: int) -> tuple[int, int]:
        """(frames to sample, pairs among them) for a video scored by ``models`` on ``frames`` frames: the cue's
        positions get their next frame; a paired cue reads ``frames`` / 2 positions, each with its next frame."""
        cue = self.cue_for(models)
        return (frames, 0) if cue is None else cue.reading(frames)

    def lightest_member(self) -> str:
        """The member with the fewest parameters (the light preset's model)."""
        return min(self.members, key=lambda n: sum(p.numel() for p in self.members[n].parameters()))

    def score_tracks(self, tracks: list[Track], models: list[str],
                     notes: list[str] | None = None, timings: dict[str, float] | None = None
                     ) -> tuple[float, dict[str, float], list[TrackResult]]:
        """Raw (unclipped) video score, per-member video scores and per-track results."""
        crops = np.concatenate([t.crops() for t in tracks])
        track_ids = np.concatenate([np.full(len(t.faces), i) for i, t in enumerate(tracks)])
        # on a GPU the crops travel once (pinned, uint8); every member resizes and normalises them there
        shared = (torch.from_numpy(crops).pin_memory().to(self.device, non_blocking=True)
                  if self.device.startswith("cuda") else crops)
        face_probs = {}
        for name in models:
            clock = time.perf_counter()
            face_probs[name] = self._classify(name, crops, notes, track_ids, shared)
            if timings is not None:
                timings[f"model:{name}"] = time.perf_counter() - clock
        clock = time.perf_counter()
        ensemble_probs = ensemble.weighted_mean(face_probs, self.member_weights)
        results, start = [], 0
        for track in tracks:
            end = start + len(track.faces)
            results.append(TrackResult(
                track_id=track.track_id, frames=[f.frame for f in track.faces], detection_prob=track.mean_prob,
                score=ensemble.track_score(ensemble_probs[start:end]),
                member_scores={n: ensemble.track_score(p[start:end]) for n, p in face_probs.items()}))
            start = end
        member_scores = {n: ensemble.video_score([r.member_scores[n] for r in results]) for n in models}
        raw = ensemble.video_score([r.score for r in results])
        if self.stacker is not None and set(self.stacker.members) <= set(models):
            faces = sum(len(t.faces) for t in tracks)
            detection_prob = float(np.mean([r.detection_prob for r in results]))
            raw = self.stacker(ensemble.stacking_features(member_scores, self.stacker.members, faces, len(results),
                                                          detection_prob))
        if timings is not None:
            timings["aggregate"] = time.perf_counter() - clock
        return raw, member_scores, results

    def prefetch(self, paths: str | Path | list, frames: int | None = None, models: list[str] | None = None) -> None:
        """Start decoding ``paths`` (one path or several, the next videos in order) in background threads; the next
        ``predict_video`` of the same path, frame count and member set takes the frames from there (decoding overlaps
        detection and classification of this video). Several paths are decoded at once, each on one FFmpeg thread;
        a single path on FFmpeg's own choice of threads."""
        import concurrent.futures

        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if not paths:
            return
        frames, pairs = self.reading(models or self.member_names, frames or self.frames)
        workers = len(paths)
        if self._prefetch_pool is None or self._prefetch_workers < workers:
            if self._prefetch_pool is not None:
                self._prefetch_pool.shutdown(wait=False)  # reads already queued there still run and are kept
            self._prefetch_pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="prefetch")
            self._prefetch_workers = workers
        threads = 1 if workers > 1 else 0
        for path in paths:
            key = (str(path), frames, pairs)
            if key in self._prefetched:
                continue
            while len(self._prefetched) > workers:  # a guess that was never used (the budget changed the frames)
                self._prefetched.pop(next(iter(self._prefetched))).cancel()
            self._prefetched[key] = self._prefetch_pool.submit(self.reader.read, path, frames, pairs, threads)

    def close(self, timeout: float = 10.0) -> None:
        """Stop prefetching: cancel what has not started, wait (up to ``timeout``) for a read in progress, so that
        no decoder thread is still running when the process exits."""
        import concurrent.futures

        futures = list(self._prefetched.values())
        self._prefetched.clear()
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures, timeout=timeout)
        if self._prefetch_pool is not None:
            self._prefetch_pool.shutdown(wait=False, cancel_futures=True)
            self._prefetch_pool = None
            self._prefetch_workers = 0

    def face_crops(self, path: str | Path, frames: int | None = None) -> np.ndarray:
        """The face crops predict would score for ``path`` (track by track), uint8 ``(N, S, S, 3)``;
        a read error raises :class:`VideoReadError`, a run without faces gives none. The watchdog's
        ``video_timeout`` applies."""
        def crops() -> np.ndarray:
            batch = self.reader.read(path, frames or self.frames)
            tracks = self._detect(batch.frames, None)
            faces = [face.crop for track in tracks for face in track.faces if face.crop is not None]
            size = self.cropper.crop_size
            return np.stack(faces) if faces else np.zeros((0, size, size, 3), dtype=np.uint8)

        return run_with_timeout(crops, self.video_timeout, name=f"faces of {Path(path).name}")

    def _take_prefetched(self, path: str | Path, frames: int, pairs: int = 0):
        """The prefetched frames of ``path`` (its read error re-raised), or ``None`` when none were asked for."""
        future = self._prefetched.pop((str(path), frames, pairs), None)
        return None if future is None else future.result()

    def _classify(self, name: str, crops: np.ndarray, notes: list[str] | None,
                  track_ids: np.ndarray | None = None, shared=None) -> np.ndarray:
        """One member's P(FAKE) per crop; out of GPU memory, retry with half the batch (kept for later videos).
        Sequence members (``spec.sequence_length``) get the track of every crop, so windows never mix faces; the
        others take ``shared``, the crops already on the device, when given."""
        member = self.members[name]
        sequence = getattr(member.spec, "sequence_length", 0) and track_ids is not None
        while True:
            batch_size = self.batch_size
            try:
                if sequence:
                    return member.predict_proba(crops, batch_size, track_ids=track_ids)
                return member.predict_proba(crops if shared is None else shared, batch_size)
            except torch.cuda.OutOfMemoryError:
                if batch_size <= 1:
                    raise
                self.batch_size = max(1, batch_size // 2)
                _release_cuda_memory()
                _note_retry(notes, f"{name} out of memory at batch {batch_size}; retried at {self.batch_size}")

    def _detect(self, frames: np.ndarray, notes: list[str] | None, detect_every: int | None = None,
                detect_long_side: int | None = None) -> list[Track]:
        """Face tracks; out of GPU memory, retry detection with half the batch (kept for later videos)."""
        while True:
            batch_size = self.cropper.batch_size
            try:
                return self.cropper(frames, detect_every=detect_every, detect_long_side=detect_long_side)
            except torch.cuda.OutOfMemoryError:
                if batch_size <= 1:
                    raise
                self.cropper.batch_size = max(1, batch_size // 2)
                _release_cuda_memory()
                _note_retry(notes, f"face detection out of memory at batch {batch_size}; "
                                   f"retried at {self.cropper.batch_size}")

    def _score_into(self, result: VideoPrediction, path: str | Path, frames: int, models: list[str],
                    stage: list[str], detection: dict | None = None) -> None:
        """The stages, filling ``result``; ``stage[0]`` says which one runs (read by the watchdog)."""
        try:
            stage[0] = "decode"
            clock = time.perf_counter()
            cue = self.cue_for(models)
            sampled, pairs = self.reading(models, frames)
            batch = self._take_prefetched(path, sampled, pairs) or self.reader.read(path, sampled, pairs)
            result.timings["decode"] = time.perf_counter() - clock
            result.frames_read, result.reader, result.notes = len(batch), batch.reader, list(batch.notes)
            stage[0] = "detect"
            detection = dict(detection or {})
            if cue is not None and cue.paired:  # half the positions: detect on every (k / 2)-th, the same spacing
                detection["detect_every"] = max(1, (detection.get("detect_every") or self.cropper.detect_every) // 2)
            tracks = self._detect(batch.frames, result.notes, **detection)
            result.timings.update(self.cropper.last_timings)
            if pairs and tracks:
                stage[0] = "temporal"
                clock = time.perf_counter()
                pairs = cue_pairs(batch.frames, batch.next_frames, tracks, cue.margin)
                flows = [pair_flow(first, second) for _, first, second in pairs] if cue.networks else None
                result.temporal_cue = pairs_cue(pairs, cue.margin, cue.shrink, flows)
                if cue.networks:  # the same pairs and flows
                    result.learned_cue = learned_cue([self.cue_networks[n] for n in cue.networks], pairs, flows)
                if cue.paired:  # the members score both frames of every pair
                    tracks = add_next_frame_faces(tracks, batch.next_frames, self.cropper.margin,
                                                  self.cropper.crop_size)
                result.timings["temporal"] = time.perf_counter() - clock
            del batch
            result.faces = sum(len(t.faces) for t in tracks)
            if not tracks:
                result.reason = "no_face"
            else:
                stage[0] = "classify"
                raw, member_scores, track_results = self.score_tracks(tracks, models, result.notes, result.timings)
                if result.temporal_cue is not None or result.learned_cue is not None:
                    result.network_score = raw
                    raw = float(ensemble.sigmoid(cue.adjust_logit(float(ensemble.logit(raw)), result.temporal_cue,
                                                                  result.learned_cue)))
                result.raw_score, result.member_scores, result.tracks = raw, member_scores, track_results
                result.score = float(self.clipper_for(models)(raw))
        except VideoReadError as exc:
            result.reason = exc.reason
            result.notes.append(str(exc))
        except (KeyboardInterrupt, SystemExit):
            raise
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
            if self.strict:
                raise
            _release_cuda_memory()
            result.reason = "out_of_memory"
            result.notes.append(f"{stage[0]}: {str(exc)[:200]}")
        except Exception as exc:  # anything else in a stage must not stop the run (unless strict)
            if self.strict:
                raise
            log.exception("scoring %s failed", path)
            result.reason = f"error:{type(exc).__name__}"
            result.notes.append(str(exc))
        stage[0] = "done"

    def predict_video(self, path: str | Path, frames: int | None = None, models: list[str] | None = None,
                      timeout: float | None = None, timeout_reason: str | None = None,
                      detect_every: int | None = None, detect_long_side: int | None = None) -> VideoPrediction:
        """Score one video; bad input gives the fallback score and a ``reason``, never an exception.

        ``frames``, ``models``, ``detect_every`` and ``detect_long_side`` override the detector's settings for
        this video (the time budget's levels use them).

        ``timeout`` (default ``self.video_timeout``; ``None``: no watchdog) abandons the video after that many
        seconds with reason ``timeout_reason``, or ``<stage>_timeout`` naming the stage that was running.
        """
        started = time.perf_counter()
        frames = frames or self.frames
        models = [m for m in (models or self.member_names) if m in self.members] or self.member_names
        timeout = self.video_timeout if timeout is None else timeout
        result = VideoPrediction(path=str(path), score=self.fallback_score, frames_requested=frames,
                                 models=tuple(models))
        stage = ["start"]
        detection = {"detect_every": detect_every, "detect_long_side": detect_long_side}
        if timeout is None:
            self._score_into(result, path, frames, models, stage, detection)
        else:
            work = VideoPrediction(path=str(path), score=self.fallback_score, frames_requested=frames,
                                   models=tuple(models))
            try:
                run_with_timeout(lambda: self._score_into(work, path, frames, models, stage, detection), timeout,
                                 name=f"video {Path(path).name}")
                result = work
            except StageTimeout:
                # the worker keeps running on its own copy of the result; this one is the fallback
                stalled = stage[0]
                result.reason = timeout_reason or f"{stalled}_timeout"
                result.frames_read = work.frames_read if stalled != "decode" else 0
                result.notes.append(f"abandoned after {timeout:.1f}s in stage {stalled}")
                log.warning("%s: abandoned after %.1fs in stage %s", Path(path).name, timeout, stalled)
        if result.reason is not None:
            result.score = self.fallback_score
        result.seconds = time.perf_counter() - started
        return result


def _release_cuda_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _note_retry(notes: list[str] | None, message: str) -> None:
    log.warning(message)
    if notes is not None:
        notes.append(message)
