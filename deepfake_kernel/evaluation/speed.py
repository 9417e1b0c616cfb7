"""Where the time goes: predict's stages timed per preset on generated clips (1080p by default, a face moving across the
frame) or a user's folder, against the **decode floor** (decoding only the sampled frames with the pipeline's first
reader), with peak memory and optional frames/resolution scaling. ``python -m deepfake_kernel.bench`` prints it."""
from __future__ import annotations

import dataclasses
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..clips import write_face_clip
from ..openmp import in_force
from ..pipeline.budget import Level, check_decode_ahead, presets


@dataclass
class BenchConfig:
    """Options of ``bench`` (each is also a ``--option``)."""

    weights: str = field(default="weights", metadata={"help": "weights folder"})
    videos: str | None = field(default=None, metadata={"help": "also bench this folder of videos"})
    clips: int = field(default=3, metadata={"help": "generated clips per resolution"})
    clip_seconds: float = field(default=10.0, metadata={"help": "length of generated clips"})
    height: int = field(default=1080, metadata={"help": "height of the generated clips (16:9)"})
    presets: list[str] = field(default_factory=lambda: ["light", "full"], metadata={"help": "light, full"})
    scaling: bool = field(default=False, metadata={"help": "add frames and resolution scaling tables"})
    device: str = "auto"
    batch_size: int = 16
    reader: str = field(default="auto", metadata={"help": "frame reader, as predict's --reader"})
    compile: str | None = field(default=None, metadata={"help": "torch.compile mode for the members, as predict's"})
    decode_ahead: int | None = field(default=None, metadata={
        "help": "videos decoded ahead, as predict's (unset: each preset's own, full 1, light 2)"})
    clip_dir: str = field(default="runs/bench/clips", metadata={"help": "where generated clips are kept"})
    json: str | None = field(default=None, metadata={"help": "write the results here"})
    repeats: int = field(default=3, metadata={
        "help": "end-to-end and decode-floor passes per preset, alternated; the table gives the median of each and "
                "of their per-pass ratios (a single pass's floor moves by up to a third from run to run)"})
    quick: bool = field(default=False, metadata={"help": "tiny run (1 short 360p clip, light preset, 1 pass) for CI"})


# ---------------------------------------------------------------------------------------------- clips
def generated_clip(folder: Path, height: int, seconds: float, fps: int = 30, seed: int = 0) -> Path:
    """A 16:9 clip of ``seconds`` with one astronaut face moving across it (:func:`clips.write_face_clip`)."""
    width = int(round(height * 16 / 9 / 2)) * 2
    return write_face_clip(folder / f"face_{height}p_{seconds:g}s_{fps}fps_{seed}.mp4", width, height,
                           int(seconds * fps), fps=fps, seed=seed)


# ---------------------------------------------------------------------------------------------- measuring
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def decode_floor(paths: list[Path], frames: int, pairs: int = 0, *, reader) -> float:
    """Seconds per video to decode only the sampled frames (and the temporal cue's ``pairs``) with ``reader`` (the
    pipeline's first reader: NVDEC through torchcodec on a GPU where installed, else decord ``get_batch``)."""
    started = time.perf_counter()
    for path in paths:
        reader.read(path, frames, pairs)
    return (time.perf_counter() - started) / len(paths)


def decode_floor_ahead(paths: list[Path], frames: int, pairs: int = 0, *, reader, ahead: int = 1) -> float:
    """Seconds per video to decode only the sampled frames the way ``predict`` decodes them with ``ahead`` videos
    decoded in the background: ``ahead`` videos at once, one FFmpeg thread each (with ``ahead`` 1, the
    :func:`decode_floor`). What decoding alone could reach at that parallelism."""
    import concurrent.futures

    if ahead <= 1:
        return decode_floor(paths, frames, pairs, reader=reader)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(ahead) as pool:
        list(pool.map(lambda path: reader.read(path, frames, pairs, 1), paths))
    return (time.perf_counter() - started) / len(paths)


def run_level(detector, path: Path, preset: Level):
    return detector.predict_video(path, frames=preset.frames, models=list(preset.models),
                                  detect_every=preset.detect_every, detect_long_side=preset.detect_long_side)


def stage_profile(detector, paths: list[Path], preset: Level) -> dict[str, float]:
    """Mean seconds per video of each stage, measured one video at a time without overlap."""
    totals: dict[str, float] = {}
    for path in paths:
        started = time.perf_counter()
        result = run_level(detector, path, preset)
        if result.reason:
            raise RuntimeError(f"bench clip {path} fell back: {result.reason} {result.notes}")
        for stage, seconds in result.timings.items():
            totals[stage] = totals.get(stage, 0.0) + seconds
        totals["total"] = totals.get("total", 0.0) + time.perf_counter() - started
    out = {k: v / len(paths) for k, v in totals.items()}
    out["overhead"] = max(0.0, out["total"] - sum(v for k, v in out.items() if k != "total"))
    return out


def end_to_end(detector, paths: list[Path], preset: Level) -> float:
    """Seconds per video the way ``predict`` runs a folder: the next ``preset.decode_ahead`` videos are decoded
    while this one is scored."""
    started = time.perf_counter()
    for index, path in enumerate(paths):
        detector.prefetch(paths[index + 1:index + 1 + preset.decode_ahead], preset.frames, list(preset.models))
        run_level(detector, path, preset)
    return (time.perf_counter() - started) / len(paths)


def bench_preset(detector, paths: list[Path], preset: Level, repeats: int = 1) -> dict:
    """Stage profile, then ``repeats`` alternated end-to-end and decode-floor passes: medians of each and of the
    per-pass ratio (a pass and its floor run back to back, so they share the machine's state of the moment)."""
    import statistics

    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    clock = time.perf_counter()
    run_level(detector, paths[0], preset)  # warm-up (and, with --compile, the compilation)
    warm_up = time.perf_counter() - clock
    stages = stage_profile(detector, paths, preset)
    passes = []
    reading = detector.reading(list(preset.models), preset.frames)
    for _ in range(max(1, repeats)):
        e2e = end_to_end(detector, paths, preset)
        floor = decode_floor(paths, *reading, reader=detector.reader.primary)
        floor_ahead = (decode_floor_ahead(paths, *reading, reader=detector.reader.primary, ahead=preset.decode_ahead)
                       if preset.decode_ahead > 1 else floor)
        passes.append((e2e, floor, floor_ahead))
    e2e = statistics.median(p[0] for p in passes)
    floor = statistics.median(p[1] for p in passes)
    ratios = [p[0] / p[1] for p in passes]
    return {"preset": asdict(preset), "videos": len(paths), "warm_up_s": round(warm_up, 2), "openmp": in_force(),
            "reader": detector.reader.primary.name, "stages_s": {k: round(v, 4) for k, v in stages.items()},
            "end_to_end_s_per_video": round(e2e, 4), "videos_per_s": round(1 / e2e, 3),
            "decode_floor_s": round(floor, 4), "e2e_over_floor": round(statistics.median(ratios), 3),
            "decode_ahead": preset.decode_ahead,
            "decode_floor_ahead_s": round(statistics.median(p[2] for p in passes), 4),
            "e2e_over_floor_ahead": round(statistics.median(p[0] / p[2] for p in passes), 3),
            "passes": [{"end_to_end_s_per_video": round(a, 4), "decode_floor_s": round(b, 4),
                        "e2e_over_floor": round(a / b, 3), "decode_floor_ahead_s": round(c, 4),
                        "e2e_over_floor_ahead": round(a / c, 3)} for a, b, c in passes],
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None}


def scaling_tables(detector, config: BenchConfig, preset: Level, folder: Path) -> dict:
    clip = generated_clip(folder, 1080, config.clip_seconds)
    by_frames = {}
    for frames in (8, 16, 32, 64):
        p = dataclasses.replace(preset, frames=frames)
        by_frames[frames] = round(end_to_end(detector, [clip, clip], p), 3)
    by_resolution = {}
    for height in (480, 720, 1080, 2160):
        path = generated_clip(folder, height, min(config.clip_seconds, 4.0 if height > 1080 else config.clip_seconds))
        by_resolution[f"{height}p"] = {"e2e_s": round(end_to_end(detector, [path, path], preset), 3),
                                       "decode_floor_s": round(decode_floor(
                                           [path], *detector.reading(list(preset.models), preset.frames),
                                           reader=detector.reader.primary), 3)}
    return {"preset": preset.name, "seconds_per_video_by_frames": by_frames,
            "by_resolution": by_resolution,
            "note": "4K clips are 4 s long (encoding 10 s of 4K here takes minutes); sampling reads the same "
                    "number of frames either way"}


def ratio_cell(result: dict) -> str:
    """The median e2e/floor ratio, with the passes' range when there were several."""
    ratios = [p["e2e_over_floor"] for p in result.get("passes", [])]
    spread = f" ({min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""
    return f"{result['e2e_over_floor']:.2f}{spread}"


def format_table(results: list[dict]) -> str:
    order = {"decode": 0, "detect": 1, "crop": 2, "aggregate": 4, "overhead": 5}
    stages = sorted({s for r in results for s in r["stages_s"] if s != "total"},
                    key=lambda s: (order.get(s, 3), s))
    header = (["preset", "frames", "models"] + stages
              + ["sum", "e2e", "floor", "e2e/floor", "ahead", "floor ahead", "e2e/floor ahead", "video/s", "RSS MB"])
    rows = []
    for r in results:
        p = r["preset"]
        rows.append([p["name"], str(p["frames"]), str(len(p["models"]))]
                    + [f"{r['stages_s'].get(s, 0):.3f}" for s in stages]
                    + [f"{r['stages_s']['total']:.3f}", f"{r['end_to_end_s_per_video']:.3f}",
                       f"{r['decode_floor_s']:.3f}", ratio_cell(r), str(r.get("decode_ahead", 1)),
                       f"{r.get('decode_floor_ahead_s', r['decode_floor_s']):.3f}",
                       f"{r.get('e2e_over_floor_ahead', r['e2e_over_floor']):.2f}", f"{r['videos_per_s']:.2f}",
                       f"{r['peak_rss_mb']:.0f}"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def machine() -> dict:
    import os

    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run(config: BenchConfig) -> dict:
    from ..pipeline.detector import Detector

    if config.decode_ahead is not None:
        check_decode_ahead(config.decode_ahead)  # before the clips are made and the weights loaded (API callers)
    if config.quick:
        config.clips, config.clip_seconds, config.height, config.presets, config.repeats = 1, 2.0, 360, ["light"], 1
    folder = Path(config.clip_dir)
    paths = [generated_clip(folder, config.height, config.clip_seconds, seed=i) for i in range(config.clips)]
    clock = time.perf_counter()
    detector = Detector.from_weights(config.weights, device=config.device, batch_size=config.batch_size,
                                     reader=config.reader, compile_mode=config.compile or None)
    load_s = time.perf_counter() - clock  # with --compile, the compilation too
    available = presets(detector.member_names, detector.lightest_member())
    if config.decode_ahead is not None:
        available = {name: dataclasses.replace(level, decode_ahead=config.decode_ahead)
                     for name, level in available.items()}
    results = {"machine": machine(), "load_s": round(load_s, 2), "compile": config.compile, "clips": {"count": len(paths), "height": config.height,
                                               "seconds": config.clip_seconds, "fps": 30}, "presets": []}
    for name in config.presets:
        results["presets"].append(bench_preset(detector, paths, available[name], config.repeats))
    if config.videos:
        from ..pipeline.submission import list_videos
        user = [Path(config.videos) / n for n in list_videos(config.videos)]
        if user:
            results["user_videos"] = [bench_preset(detector, user, available[n], config.repeats)
                                      for n in config.presets]
    if config.scaling:
        results["scaling"] = scaling_tables(detector, config, available[config.presets[0]], folder)
    return results
