import csv
import json

import pytest

from deepfake_kernel import bench, predict
from deepfake_kernel.evaluation import speed


def test_quick_bench_reports_stages_floor_and_memory(tiny_weights, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--weights", str(tiny_weights), "--quick", "--clip-dir", str(tmp_path / "clips"),
                       "--json", str(out), "--device", "cpu"]) == 0
    results = json.loads(out.read_text())
    light = results["presets"][0]
    assert light["preset"]["name"] == "light" and light["preset"]["frames"] == 16
    for stage in ("decode", "detect", "crop", "aggregate", "overhead", "model:efficientnet_lite0"):
        assert stage in light["stages_s"], stage
    assert light["decode_floor_s"] > 0 and light["e2e_over_floor"] > 0 and light["peak_rss_mb"] > 0
    # light decodes two videos ahead: also against decoding alone two videos at a time, one thread each
    assert light["decode_ahead"] == 2 and light["decode_floor_ahead_s"] > 0 and light["e2e_over_floor_ahead"] > 0
    printed = capsys.readouterr().out
    assert "e2e/floor" in printed and "light" in printed and "e2e/floor ahead" in printed
    assert len(light["passes"]) == 1  # --quick: one pass


def test_repeated_passes_report_medians_and_their_range(tiny_weights, tmp_path):
    """--repeats N alternates N end-to-end and decode-floor passes; the ratio is the median of the passes' ratios."""
    import statistics

    from deepfake_kernel.evaluation.speed import format_table

    out = tmp_path / "bench.json"
    assert bench.main(["--weights", str(tiny_weights), "--clips", "1", "--clip-seconds", "2", "--height", "360",
                       "--presets", "light", "--repeats", "3", "--clip-dir", str(tmp_path / "clips"),
                       "--json", str(out), "--device", "cpu"]) == 0
    light = json.loads(out.read_text())["presets"][0]
    passes = light["passes"]
    assert len(passes) == 3 and all(p["decode_floor_s"] > 0 for p in passes)
    assert abs(light["e2e_over_floor"] - statistics.median(p["e2e_over_floor"] for p in passes)) < 2e-3
    assert light["decode_floor_s"] == round(statistics.median(p["decode_floor_s"] for p in passes), 4)
    ratios = [p["e2e_over_floor"] for p in passes]
    assert f"({min(ratios):.2f}–{max(ratios):.2f})" in format_table([light])


def test_fast_path_gives_the_plain_answer(video_dir, shipped_weights, tmp_path, caplog):
    """The fast path (next video decoded in a thread, torchcodec first where it works, the member compiled with
    torch.compile) must give the plain path's scores (decord, one video at a time, eager) within 1e-3; the
    trained member scores videos differently, so a mix-up of frames would show."""
    from deepfake_kernel.pipeline.video import torchcodec_status

    paths = {"fast": dict(prefetch=True, reader="torchcodec" if torchcodec_status() is None else "auto",
                          compile="default"),
             "plain": dict(prefetch=False, reader="decord", compile=None)}
    results = {}
    for path, options in paths.items():
        out, details = tmp_path / f"sub_{path}.csv", tmp_path / f"details_{path}.csv"
        predict.run(predict.PredictConfig(video_dir=str(video_dir), weights=str(shipped_weights), out=str(out),
                                          frames=4, detect_long_side=480, progress=False, details=str(details),
                                          models=["efficientnet_lite0"], **options))
        assert len(out.read_text().splitlines()) == 5  # a row for every video
        with open(details, newline="") as handle:
            rows = list(csv.DictReader(handle))
        # the members' scores before the temporal cues (these still frames can take both videos' raw scores to the
        # floor) and before the calibration's clip (which can map both to one submitted value)
        results[path] = {row["filename"]: float(row["network_score"] or row["raw_score"]) for row in rows
                         if row["raw_score"]}
        assert (options["reader"] if options["reader"] != "auto" else "decord") in {row["reader"] for row in rows}
    assert "torch.compile failed" not in caplog.text
    assert results["fast"].keys() == results["plain"].keys()
    assert results["fast"]["one_face.mp4"] != results["fast"]["two_faces.mp4"]
    for name, score in results["fast"].items():
        assert abs(score - results["plain"][name]) <= 1e-3, name


def test_decode_ahead_reaches_the_bench(tiny_weights, tmp_path):
    """--decode-ahead overrides the presets' own (what a user on a GPU would try for the full preset)."""
    out = tmp_path / "bench.json"
    assert bench.main(["--weights", str(tiny_weights), "--clips", "2", "--clip-seconds", "2", "--height", "360",
                       "--presets", "light", "--repeats", "1", "--decode-ahead", "1", "--clip-dir",
                       str(tmp_path / "clips"), "--json", str(out), "--device", "cpu"]) == 0
    light = json.loads(out.read_text())["presets"][0]
    assert light["decode_ahead"] == 1 and light["preset"]["decode_ahead"] == 1
    assert light["decode_floor_ahead_s"] == light["decode_floor_s"]  # one ahead: the floor itself


@pytest.mark.parametrize("videos", ["0", "9"])
def test_a_decode_ahead_out_of_range_fails_before_anything_runs(videos, tmp_path, capsys):
    """predict and bench share the range [1, 8]; bench refuses another before it makes a clip or reads weights."""
    with pytest.raises(SystemExit):
        bench.main(["--weights", str(tmp_path / "no_weights"), "--clip-dir", str(tmp_path / "clips"),
                    "--presets", "light,full", "--decode-ahead", videos])
    assert "--decode-ahead must lie in [1, 8]" in capsys.readouterr().err
    assert not (tmp_path / "clips").exists()
    with pytest.raises(ValueError, match=r"\[1, 8\]"):
        speed.run(speed.BenchConfig(weights=str(tmp_path / "no_weights"), clip_dir=str(tmp_path / "clips"),
                                    decode_ahead=int(videos)))
