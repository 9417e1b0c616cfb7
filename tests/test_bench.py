import json

from deepfake_kernel import bench, predict


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
    printed = capsys.readouterr().out
    assert "e2e/floor" in printed and "light" in printed


def test_fast_path_gives_the_plain_answer(video_dir, shipped_weights, tmp_path):
    """Prefetching (the next video decoded in a thread) must not change any score (trained member: scores
    that differ between videos, so a mix-up of frames would show)."""
    results = {}
    for prefetch in (True, False):
        out = tmp_path / f"sub_{prefetch}.csv"
        predict.run(predict.PredictConfig(video_dir=str(video_dir), weights=str(shipped_weights), out=str(out),
                                          frames=4, detect_long_side=480, progress=False, prefetch=prefetch,
                                          models=["efficientnet_lite0"]))
        results[prefetch] = {line.split(",")[0]: float(line.split(",")[1])
                             for line in out.read_text().splitlines()[1:]}
    assert results[True].keys() == results[False].keys()
    assert results[True]["one_face.mp4"] != results[True]["two_faces.mp4"]
    for name, score in results[True].items():
        assert abs(score - results[False][name]) <= 1e-3, name
