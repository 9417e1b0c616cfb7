"""The run over a folder of videos: rows from the folder or the template, the time budget, the watchdog, and a
complete ``submission.csv`` whatever happens (fallback rows first, checkpoints, a final write that signals
cannot cut). :func:`run` returns the summary and, when given a ``predictions`` dict, fills it with each video's
:class:`~.detector.VideoPrediction`; ``predict`` is its command line, ``evaluate`` consumes the predictions."""
from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .adapt import AdaptConfig, adapt_to_videos, centre_scores
from .budget import (PRESET_NAMES, Level, TimeBudget, check_decode_ahead, default_ladder, parse_duration,
                     presets)
from .ensemble import member_set_key
# light imports only: torch and the models load inside run(), after the SIGTERM handler is in place
from .stage_config import CropperConfig
from .submission import (atomic_write_text, check_writable, filenames_for, find_template, read_submission, render_csv,
                         write_submission)
from .video import READERS
from .watchdog import abandoned_alive

if TYPE_CHECKING:
    from .detector import VideoPrediction

log = logging.getLogger("deepfake_kernel.predict")

CHECKPOINT_SECONDS = 30.0  # the submission is rewritten this often, so even SIGKILL loses little
FINAL_WRITE_RESERVE = 1.0  # seconds of the time budget kept for writing the files at the end
EXIT_SIGINT, EXIT_SIGTERM, EXIT_CONFIG = 130, 143, 2

DETAIL_COLUMNS = ("filename", "label", "raw_score", "reason", "frames_requested", "frames_read", "faces",
                  "tracks", "detection_prob", "models", "member_scores", "reader", "seconds", "timings", "notes",
                  "temporal_cue", "network_score", "learned_cue")


@dataclass
class PredictConfig:
    """Options of ``predict`` (each is also a ``--option``)."""

    video_dir: str = ""
    out: str = field(default="submission.csv", metadata={"help": "submission file to write"})
    template: str | None = field(default=None, metadata={"help": "DFDC sample_submission.csv: rows in its order"})
    weights: str = field(default="weights", metadata={"help": "folder with manifest.json and checkpoints"})
    frames: int = field(default=32, metadata={"help": "frames sampled per video"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    time_budget: str | None = field(default=None, metadata={"help": "wall-clock budget, e.g. 9h, 30m, 600"})
    models: list[str] = field(default_factory=list, metadata={"help": "members to run (default: all in manifest)"})
    batch_size: int = field(default=16, metadata={"help": "frames/faces per batch"})
    details: str | None = field(default=None, metadata={"help": "also write a per-video CSV here"})
    # the cropper's defaults are CropperConfig's, which the training crop cache uses too
    detect_long_side: int = field(default=CropperConfig.detect_long_side,
                                  metadata={"help": "face detection on frames this long"})
    max_faces: int = field(default=CropperConfig.max_faces, metadata={"help": "faces (tracks) kept per video"})
    bystander_ratio: float = field(default=CropperConfig.min_track_size_ratio, metadata={
        "help": "drop a face track whose faces are smaller than this share of the largest track's (a bystander "
                "in the background; 0 keeps every track)"})
    margin: float = field(default=CropperConfig.margin,
                          metadata={"help": "crop margin around a face, fraction of its side"})
    min_face_prob: float = field(default=CropperConfig.min_prob, metadata={"help": "MTCNN probability to keep a face"})
    min_face_size: int = field(default=CropperConfig.min_face_size, metadata={
        "help": "smallest face MTCNN looks for, in pixels of the detection frame (40 halves detection time on "
                "1080p at --detect-long-side 1000 but misses faces under ~77 px of the 1080p frame)"})
    fallback_score: float = field(default=0.5, metadata={"help": "label for videos that cannot be scored"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch default)"})
    video_timeout: float = field(default=300.0, metadata={
        "help": "seconds after which a video whose decoding, detection or scoring hangs is abandoned (0: never)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    prefetch: bool = field(default=True, metadata={
        "help": "decode the next videos while scoring this one (as many as the preset says: full 1, light 2)"})
    decode_ahead: int | None = field(default=None, metadata={
        "help": "videos decoded ahead in background threads, for every level (unset: the preset's, full 1, light 2; "
                "more than 1 decodes each on one FFmpeg thread). Try 2 where decoding dominates, e.g. on a GPU "
                "with CPU decoding; bench --decode-ahead measures it"})
    shard: str | None = field(default=None, metadata={"help": "K/N: score every N-th row from row K (merge "
                                                              "with --merge); auto: RANK/WORLD_SIZE of torchrun"})
    merge: list[str] = field(default_factory=list, metadata={"help": "shard submissions to merge into --out "
                                                                     "(no video is scored)"})
    detect_every: int = field(default=CropperConfig.detect_every,
                              metadata={"help": "run MTCNN on every k-th frame, interpolate between"})
    preset: str = field(default="full", metadata={
        "help": "full: --frames, --models, --detect-every, --detect-long-side as given (every member by default); "
                "light: the lightest member, 16 frames, MTCNN on every 4th frame at 640 px (overrides those four)"})
    reader: str = field(default="auto", metadata={
        "help": "frame reader: auto (torchcodec NVDEC on a GPU when installed, else decord), torchcodec, decord, "
                "pyav; the others remain fallbacks"})
    strict: bool = field(default=False, metadata={
        "help": "stop at the first exception inside a stage, with its traceback (for developing a member); "
                "by default such a video gets --fallback-score and its reason, and the run goes on"})
    test_set_norm_blocks: int | None = field(default=None, metadata={
        "help": "before scoring, re-estimate the BatchNorm statistics of each member's stem and this many blocks on "
                "faces of the videos to score (test-set AdaBN, docs/cross_family.md); -1: off; unset: as the "
                "manifest says (the shipped weights' calibration was fitted with it: see the README)"})
    adapt_videos: int = field(default=AdaptConfig.max_videos, metadata={
        "help": "videos read (evenly spaced over the run) for those statistics, before the first row is scored"})
    adapt_min_videos: int = field(default=AdaptConfig.min_videos, metadata={
        "help": "fewer usable videos than this: the members keep their training statistics (and, with "
                "--test-set-center, fewer scored videos than this: the scores are not centred)"})
    test_set_center: bool | None = field(default=None, metadata={
        "help": "calibrate each video's logit relative to the median logit of the run's scored videos (assumes "
                "about half of them are fake, as in DFDC's test sets; docs/predict.md); unset: as the manifest's "
                "calibration says (the shipped one was fitted with it: see the README)"})
    temporal_cue: bool | None = field(default=None, metadata={
        "help": "add the temporal cues (optical-flow residual between consecutive frames at the manifest's positions "
                "of the main face track, 16 shipped, docs/predict.md) to the score with the manifest's weights; unset: "
                "as the manifest's calibration says (the shipped one carries them, for the full preset's two members: "
                "see the README)"})
    compile: str | None = field(default=None, metadata={
        "help": "run the members through torch.compile with this mode (default, reduce-overhead, max-autotune); "
                "compiling happens at load time (about 33 s for the shipped members on a 2-core CPU with an empty "
                "inductor cache), so it pays off on long runs"})


def _details_row(name: str, prediction: "VideoPrediction | None", fallback: float, reason: str) -> list:
    if prediction is None:
        return [name, f"{fallback:.6f}", "", reason, 0, 0, 0, 0, "", "", "", "", 0, "", "", "", "", ""]
    p = prediction
    members = ";".join(f"{k}={v:.5f}" for k, v in p.member_scores.items())
    return [name, f"{p.score:.6f}", "" if p.raw_score is None else f"{p.raw_score:.6f}", p.reason or "",
            p.frames_requested, p.frames_read, p.faces, len(p.tracks), f"{p.detection_prob:.4f}", ";".join(p.models),
            members, p.reader, f"{p.seconds:.3f}", ";".join(f"{k}={v:.3f}" for k, v in p.timings.items()),
            " | ".join(p.notes)[:500], "" if p.temporal_cue is None else f"{p.temporal_cue:.5f}",
            "" if p.network_score is None else f"{p.network_score:.6f}",
            "" if p.learned_cue is None else f"{p.learned_cue:.5f}"]


class _Interrupted(BaseException):
    """Raised by the SIGTERM handler; a BaseException (like KeyboardInterrupt), so that the ``except Exception``
    of a library (optional imports in torch, timm) or of a stage cannot swallow it."""


class StrictStop(RuntimeError):
    """Under ``--strict``: a stage raised while scoring the named video (the cause is chained)."""


class ConfigError(ValueError):
    """A command line that cannot work; raised before any video is read, the message says what to do."""


def check_config(config: PredictConfig) -> tuple[Path, list[str], float | None]:
    """Everything that can be checked without the models: the folder, the rows, the output paths, numbers.

    Returns the video folder, the row names and the budget in seconds; raises :class:`ConfigError` (or
    ``FileNotFoundError``) with what to do.
    """
    video_dir = Path(config.video_dir)
    if not video_dir.is_dir():
        raise FileNotFoundError(f"video folder {video_dir} does not exist; pass the folder that holds the videos")
    template = find_template(video_dir, config.template)
    if template is not None and not template.is_file():
        raise FileNotFoundError(f"template {template} does not exist; pass --template PATH or leave it out")
    if config.frames < 1 or config.batch_size < 1 or config.max_faces < 1:
        raise ConfigError("--frames, --batch-size and --max-faces must be at least 1")
    if not 0.0 <= config.bystander_ratio <= 1.0:
        raise ConfigError(f"--bystander-ratio must lie in [0, 1] (0 keeps every track), not {config.bystander_ratio}")
    if not 0.0 <= config.fallback_score <= 1.0:
        raise ConfigError(f"--fallback-score must lie in [0, 1], not {config.fallback_score}")
    if config.video_timeout < 0:
        raise ConfigError("--video-timeout must be positive (0 turns the watchdog off)")
    if config.reader not in READERS:
        raise ConfigError(f"--reader must be one of {', '.join(READERS)}, not {config.reader!r}")
    if config.preset not in PRESET_NAMES:
        raise ConfigError(f"--preset must be one of {', '.join(PRESET_NAMES)}, not {config.preset!r}")
    if config.detect_every < 1 or config.detect_long_side < 32 or config.min_face_size < 12:
        raise ConfigError("--detect-every must be at least 1, --detect-long-side at least 32 pixels and "
                          "--min-face-size at least 12 pixels (MTCNN's smallest window)")
    if config.compile not in (None, "", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"):
        raise ConfigError(f"--compile {config.compile!r}: use default, reduce-overhead or max-autotune")
    if config.decode_ahead is not None:
        try:
            check_decode_ahead(config.decode_ahead)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if config.adapt_videos < 1 or config.adapt_min_videos < 1:
        raise ConfigError("--adapt-videos and --adapt-min-videos must be at least 1")
    if config.test_set_norm_blocks is not None and config.test_set_norm_blocks < -1:
        raise ConfigError("--test-set-norm-blocks: give the number of blocks (0 = the stem alone), or -1 for off")
    try:
        budget_seconds = parse_duration(config.time_budget)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    outputs = [("--out", config.out)] + ([("--details", config.details)] if config.details else [])
    for option, path in outputs:
        try:
            check_writable(path)
        except OSError as exc:
            raise ConfigError(f"cannot write {option} {path}: {exc.strerror or exc}. Choose a file in a folder "
                              f"you can write to (e.g. {option} ./{Path(path).name}).") from None
    names = filenames_for(video_dir, template)
    if config.shard:
        index, count = parse_shard(config.shard)
        names = names[index::count]
    return video_dir, names, budget_seconds


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` → ``(K, N)``; ``"auto"`` → torchrun's ``(RANK, WORLD_SIZE)``."""
    if text == "auto":
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like K/N (e.g. 0/4) or auto, not {text!r}") from None
    if not 0 <= index < count:
        raise ConfigError(f"--shard {text}: K must lie in [0, N)")
    return index, count


def shard_output(out: str, index: int, count: int) -> str:
    path = Path(out)
    return str(path.with_name(f"{path.stem}.shard{index}of{count}{path.suffix}"))


def merge(config: PredictConfig, parts: list[str]) -> dict:
    """One submission from shard submissions: the full row list, each value from the shard that scored it."""
    video_dir = Path(config.video_dir)
    names = filenames_for(video_dir, find_template(video_dir, config.template))
    scores: dict[str, float] = {}
    for part in parts:
        scores.update(read_submission(part))
    missing = [n for n in names if n not in scores]
    write_submission(config.out, names, scores, config.fallback_score)
    return {"videos": len(names), "merged_from": len(parts), "missing_rows_filled": len(missing),
            "out": str(config.out)}


def run_sharded_auto(config: PredictConfig) -> dict:
    """Under torchrun: each rank scores its shard; rank 0 waits for every shard and merges them into --out."""
    index, count = parse_shard("auto")
    shard_config = dataclasses.replace(config, shard=f"{index}/{count}", out=shard_output(config.out, index, count))
    summary = run(shard_config)
    Path(shard_config.out + ".done").write_text("done\n")
    if index == 0:
        parts = [shard_output(config.out, k, count) for k in range(count)]
        while not all(Path(p + ".done").is_file() for p in parts):
            time.sleep(0.5)
        summary["merged"] = merge(config, parts)
    return summary


def run(config: PredictConfig, predictions: dict | None = None) -> dict:
    """Predict every video of ``config.video_dir``; return the summary. Configuration errors raise early.

    ``predictions``, if given, receives ``name → VideoPrediction`` for every video that was scored (a video the
    time budget skipped, or one lost to an unexpected error, has no entry: its row holds the fallback score).

    Once the configuration checks pass, a complete submission is guaranteed: all-fallback rows are written
    before the first video and the file is rewritten every ``CHECKPOINT_SECONDS`` and at the end, also when
    the run is interrupted (Ctrl-C, SIGTERM, even while the models load).
    """
    video_dir, names, budget_seconds = check_config(config)
    started = time.monotonic()
    scores: dict[str, float] = {}
    details: dict[str, list] = {}
    reasons: collections.Counter = collections.Counter()
    levels: collections.Counter = collections.Counter()
    interrupted = None
    detector = None
    adaptation = centring = None
    to_centre: dict[str, "VideoPrediction"] = {}  # scored videos whose logits take part in test-set centring
    with_cue: collections.Counter = collections.Counter()  # member set → videos whose score includes its cue

    def current_scores() -> dict[str, float]:
        if not to_centre:
            return scores
        return {**scores, **centre_scores(detector, to_centre, config.adapt_min_videos)[0]}

    # While torch and the models load, an interruption is only recorded and raised once loading returns: an
    # exception raised by a signal handler inside torch's import (C++ calling back into Python) aborts the
    # process (SIGABRT) before any row is written.
    loading, deferred = True, []

    def on_sigterm(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second SIGTERM must not cut the final write
        if loading:
            deferred.append(_Interrupted("SIGTERM"))
            return
        raise _Interrupted("SIGTERM")

    def on_sigint_while_loading(signum, frame):
        signal.signal(signal.SIGINT, previous_sigint)  # a second Ctrl-C interrupts at once
        deferred.append(KeyboardInterrupt())

    previous_handler = previous_sigint = bar = None
    try:
        if _main_thread():  # inside the try: from here on, a SIGTERM ends in a complete submission
            previous_handler = signal.signal(signal.SIGTERM, on_sigterm)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored
                previous_sigint = signal.signal(signal.SIGINT, on_sigint_while_loading)
        log.info("%d rows; loading the models from %s", len(names), config.weights)
        try:
            detector = _load_detector(config)
        finally:
            loading = False
            if previous_sigint is not None:
                signal.signal(signal.SIGINT, previous_sigint)
        if deferred:
            raise deferred[0]
        # a complete submission exists from the start, so nothing that happens later can lose a row
        write_submission(config.out, names, {}, config.fallback_score)
        last_checkpoint = time.monotonic()
        if detector.test_set_norm:
            # at most half of the budget goes to reading faces for the statistics; the rest scores the videos
            deadline = None if budget_seconds is None else started + 0.5 * budget_seconds
            adaptation = adapt_to_videos(detector, [video_dir / n for n in names], detector.test_set_norm,
                                         AdaptConfig(config.adapt_videos, AdaptConfig.per_video,
                                                     config.adapt_min_videos), deadline)
        ladder = default_ladder(*top_and_light(config, detector))
        if config.decode_ahead is not None:
            ladder = [dataclasses.replace(level, decode_ahead=config.decode_ahead) for level in ladder]
        remaining = None if budget_seconds is None else budget_seconds - (time.monotonic() - started)
        budget = TimeBudget(remaining, len(names), ladder)
        ahead = max(level.decode_ahead for level in ladder) if config.prefetch else 0
        bar = _progress(len(names), config.progress)
        for index, name in enumerate(names):
            try:
                prediction = _predict_one(name, video_dir, config, detector, budget, scores, details, reasons,
                                          levels, names[index + 1:index + 1 + ahead])
                if predictions is not None and prediction is not None:
                    predictions[name] = prediction
                if prediction is not None and (prediction.temporal_cue is not None
                                               or prediction.learned_cue is not None):
                    with_cue[member_set_key(prediction.models)] += 1
                if (detector.test_set_center and prediction is not None and not prediction.reason
                        and prediction.raw_score is not None and math.isfinite(prediction.raw_score)):
                    to_centre[name] = prediction
            except (KeyboardInterrupt, _Interrupted):
                raise
            except Exception as exc:  # a bug outside predict_video must not cost the other rows
                if config.strict:
                    raise StrictStop(name) from exc
                log.exception("%s: unexpected failure", name)
                details[name] = _details_row(name, None, config.fallback_score, f"error:{type(exc).__name__}")
                reasons[f"error:{type(exc).__name__}"] += 1
                scores.pop(name, None)
                to_centre.pop(name, None)
            if bar is not None:
                bar.update(1)
                if budget_seconds:
                    bar.set_postfix_str(f"budget left {max(0.0, budget.remaining()):.0f}s")
            if time.monotonic() - last_checkpoint > CHECKPOINT_SECONDS:
                write_submission(config.out, names, current_scores(), config.fallback_score)
                last_checkpoint = time.monotonic()
    except (KeyboardInterrupt, _Interrupted) as exc:
        interrupted = "SIGTERM" if isinstance(exc, _Interrupted) else type(exc).__name__
        log.warning("interrupted (%s): writing the submission with %.2f for unreached videos",
                    interrupted, config.fallback_score)
    finally:
        if bar is not None:
            bar.close()
        if detector is not None and detector.test_set_center:
            centring = _apply_centring(detector, to_centre, config.adapt_min_videos, scores, details)
        if detector is not None or interrupted is not None:  # not a configuration error: write every row
            _write_outputs(config, names, scores, details, reasons, previous_handler)
        elif previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        if detector is not None:
            detector.close()  # no decoder thread may still run when the process exits

    elapsed = time.monotonic() - started
    summary = {"videos": len(names), "scored": len(names) - sum(reasons.values()),
               "fallbacks": dict(reasons), "levels": dict(levels), "seconds": round(elapsed, 2),
               "seconds_per_video": round(elapsed / max(1, len(names)), 3), "out": str(config.out),
               "interrupted": interrupted, "abandoned_workers": abandoned_alive()}
    if adaptation is not None:
        summary["test_set_norm"] = adaptation
    if centring is not None:
        summary["test_set_center"] = centring
    if detector is not None and (detector.temporal_cue is not None or any(detector.member_set_cues.values())):
        summary["temporal_cue"] = {"videos": sum(with_cue.values()), "member_sets": {
            key: {"videos": count, "weight": cue.weight, "paired": cue.paired, "networks": list(cue.networks),
                  "network_weight": cue.network_weight}
            for key, count in sorted(with_cue.items()) if (cue := detector.cue_for(key.split("+"))) is not None}}
    if detector is not None:  # which decoder ran, and why GPU decoding was off or dropped
        summary["reader"] = detector.reader.primary.name
        summary["reader_notes"] = list(detector.reader.notes)
    return summary


def _apply_centring(detector, to_centre: dict, min_videos: int, scores: dict, details: dict) -> dict:
    """The final test-set centring (:func:`.adapt.centre_scores`) written into ``scores``, the details rows and the
    predictions; a failure here keeps the uncentred scores (every row is still written)."""
    try:
        centred, summary = centre_scores(detector, to_centre, min_videos)
    except Exception as exc:  # never at the cost of the submission
        log.exception("test-set centring failed: scores left uncentred")
        return {"videos": len(to_centre), "reason": f"failed: {type(exc).__name__}: {exc}"}
    for name, score in centred.items():
        scores[name] = score
        to_centre[name].score = score
        if name in details:
            details[name][1] = f"{score:.6f}"
    if "reason" in summary:
        log.warning("test-set centring: %s", summary["reason"])
    return summary


def _load_detector(config: PredictConfig):
    """Import torch and the models (the slow imports happen here, not at module import) and build the detector."""
    if config.threads:
        import torch
        torch.set_num_threads(config.threads)
    from .detector import Detector

    return Detector.from_weights(config.weights, device=config.device, models=config.models or None,
                                 frames=config.frames, batch_size=config.batch_size,
                                 detect_long_side=config.detect_long_side, max_faces=config.max_faces,
                                 margin=config.margin, min_prob=config.min_face_prob,
                                 fallback_score=config.fallback_score, detect_every=config.detect_every,
                                 reader=config.reader, compile_mode=config.compile or None,
                                 min_face_size=config.min_face_size, strict=config.strict,
                                 bystander_ratio=config.bystander_ratio,
                                 test_set_norm_blocks=config.test_set_norm_blocks,
                                 test_set_center=config.test_set_center, temporal_cue=config.temporal_cue)


def top_and_light(config: PredictConfig, detector) -> tuple[Level, Level]:
    """The level asked for (``--preset`` or the explicit options) and the light preset below it."""
    lightest = detector.lightest_member()
    named = presets(detector.member_names, lightest)
    if config.preset != "full":
        return named[config.preset], named["light"]
    models = tuple(m for m in (config.models or detector.member_names) if m in detector.members)
    return Level(config.frames, models or tuple(detector.member_names), config.detect_every,
                 config.detect_long_side, name="asked"), named["light"]


def _predict_one(name: str, video_dir: Path, config: PredictConfig, detector, budget: TimeBudget,
                 scores: dict, details: dict, reasons: collections.Counter, levels: collections.Counter,
                 upcoming: list[str] = ()) -> "VideoPrediction | None":
    level = budget.choose()
    if level is None:
        reason = "time_budget"
        details[name] = _details_row(name, None, config.fallback_score, reason)
        reasons[reason] += 1
        budget.record(None, 0.0)
        return None
    # the watchdog: a video may not run past --video-timeout, nor past the end of the time budget
    timeout, timeout_reason = (config.video_timeout or None), None
    if budget.seconds is not None:
        left = max(0.1, budget.remaining() - FINAL_WRITE_RESERVE)
        if timeout is None or left < timeout:
            timeout, timeout_reason = left, "time_budget"
    if config.prefetch and upcoming:  # decode the next videos while this one is scored
        detector.prefetch([video_dir / n for n in upcoming[:level.decode_ahead]], level.frames, list(level.models))
    prediction = detector.predict_video(video_dir / name, frames=level.frames, models=list(level.models),
                                        timeout=timeout, timeout_reason=timeout_reason,
                                        detect_every=level.detect_every, detect_long_side=level.detect_long_side)
    budget.record(level, prediction.seconds)
    levels[level.describe()] += 1
    scores[name] = prediction.score
    details[name] = _details_row(name, prediction, config.fallback_score, "")
    if prediction.reason:
        reasons[prediction.reason] += 1
        log.info("%s: fallback %.2f (%s)", name, prediction.score, prediction.reason)
    else:
        log.info("%s: %.4f", name, prediction.score)
    return prediction


def _write_outputs(config: PredictConfig, names: list[str], scores: dict, details: dict,
                   reasons: collections.Counter, previous_handler) -> None:
    """The final submission and details; a second Ctrl-C or SIGTERM cannot cut these writes short."""
    blocked = []
    if _main_thread():
        blocked = [(sig, signal.signal(sig, signal.SIG_IGN)) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        write_submission(config.out, names, scores, config.fallback_score)
        for name in names:
            if name not in details:
                details[name] = _details_row(name, None, config.fallback_score, "interrupted")
                reasons["interrupted"] += 1
        if config.details:
            atomic_write_text(config.details, render_csv(DETAIL_COLUMNS, [details[n] for n in names]))
    finally:
        for sig, handler in blocked:
            signal.signal(sig, handler)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="video", dynamic_ncols=True)
