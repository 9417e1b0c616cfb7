"""``python -m deepfake_kernel.bench``: where the time goes, per stage, per preset, against the decode floor.

Runs predict's stages on generated clips (10 s, 30 fps, H.264, a face moving across the frame) and on any
folder given with ``--videos``, and reports per stage (decode, detect, crop, each member, aggregation, overhead)
seconds per video, videos per second, peak RSS and peak GPU memory, as a table and as JSON. The **decode
floor** is the time to decode only the sampled frames with the pipeline's first reader (torchcodec's NVDEC on
a GPU where installed, else decord ``get_batch``), one video at a time; ``e2e / floor`` says how close the whole
pipeline (run as ``predict`` runs it, with the next videos decoded in the background: the light preset two at once)
comes to it, and ``e2e / floor ahead`` how close it comes to decoding alone done the way it decodes. ``--scaling`` adds
time per video against frames (8–64) and resolution (480p–4K). Examples::

    python -m deepfake_kernel.bench                      # light and full presets on 1080p clips
    python -m deepfake_kernel.bench --scaling --json bench.json
    python -m deepfake_kernel.bench --quick              # seconds; what CI runs
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import add_dataclass_args, from_args
from .evaluation.speed import BenchConfig, format_table, run
from .pipeline.budget import check_decode_ahead
from .openmp import policy_for, set_wait_policy


def run_presets_apart(argv: list[str], presets: list[str]) -> dict:
    """Each preset benched in its own interpreter, under the OpenMP wait policy ``predict --preset`` gives it
    (openmp.py: the runtime reads it once, when torch loads), and the results joined in order; the first preset's
    run makes the ``--scaling`` tables, as in one run."""
    joined: dict | None = None
    with tempfile.TemporaryDirectory() as folder:
        for index, preset in enumerate(presets):
            out = Path(folder) / f"{preset}.json"
            extra = ["--presets", preset, "--json", str(out)] + (["--no-scaling"] if index else [])
            subprocess.run([sys.executable, "-m", "deepfake_kernel.bench", *argv, *extra], check=True,
                           stdout=subprocess.DEVNULL)
            part = json.loads(out.read_text())
            if joined is None:
                joined = part
                continue
            joined["presets"] += part["presets"]
            if "user_videos" in part:
                joined.setdefault("user_videos", []).extend(part["user_videos"])
    return joined or {}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, BenchConfig)
    config = from_args(BenchConfig, parser.parse_args(argv))
    if config.decode_ahead is not None:
        try:
            check_decode_ahead(config.decode_ahead)
        except ValueError as exc:
            parser.error(str(exc))  # before any clip is made or weight loaded
    presets = ["light"] if config.quick else list(config.presets)
    if len({json.dumps(policy_for(p), sort_keys=True) for p in presets}) > 1:
        results = run_presets_apart(argv, presets)
    else:
        set_wait_policy(presets[0])  # as predict does, before torch loads
        results = run(config)
    print(f"machine: {json.dumps(results['machine'])}")
    print(f"clips: {json.dumps(results['clips'])}; models loaded in {results['load_s']:.1f}s"
          + (f" (compiled: {config.compile})" if config.compile else ""))
    print(f"reader: {results['presets'][0]['reader']}" if results["presets"] else "")
    print(format_table(results["presets"]))
    print("OpenMP wait: " + "; ".join(f"{p['preset']['name']} {json.dumps(p.get('openmp'))}"
                                      for p in results["presets"]))
    if "user_videos" in results:
        print(f"\n{config.videos}:\n" + format_table(results["user_videos"]))
    if "scaling" in results:
        s = results["scaling"]
        print(f"\nseconds per video by frames ({s['preset']}): {json.dumps(s['seconds_per_video_by_frames'])}")
        print(f"by resolution ({s['preset']}): {json.dumps(s['by_resolution'])}")
    if config.json:
        Path(config.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
