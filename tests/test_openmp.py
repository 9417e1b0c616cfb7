"""OpenMP's wait policy per preset, set before torch loads (openmp.py), and bench running presets apart."""
import json
import os
import subprocess
import sys

import pytest

from deepfake_kernel import bench, openmp


@pytest.fixture
def no_user_policy(monkeypatch):
    for name in openmp.VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_each_preset_gets_its_policy_unless_the_user_chose_or_torch_already_loaded(monkeypatch, no_user_policy):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert openmp.set_wait_policy("light") == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert openmp.set_wait_policy("full") == {"GOMP_SPINCOUNT": "10000"} and "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setenv("GOMP_SPINCOUNT", "5")  # the user's choice stays, for every preset
    assert openmp.set_wait_policy("light") == {} and os.environ["GOMP_SPINCOUNT"] == "5"
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setitem(sys.modules, "torch", object())  # too late to take effect: nothing is set
    assert openmp.set_wait_policy("light") == {} and "OMP_WAIT_POLICY" not in os.environ


def test_predict_sets_the_presets_policy_before_it_loads_torch(tmp_path, no_user_policy):
    """A fresh interpreter: ``predict``'s command line sets the policy of the preset asked for before torch is
    imported (a folder with no video still loads the models), so torch's OpenMP runtime reads it."""
    env = {k: v for k, v in os.environ.items() if k not in openmp.VARIABLES}
    seen = {}
    for preset in ("light", "full"):
        code = ("import os, sys\n"
                "from deepfake_kernel import predict\n"
                "assert 'torch' not in sys.modules\n"
                f"predict.main([{str(tmp_path)!r}, '--preset', {preset!r}, '--out', "
                f"{str(tmp_path / 'submission.csv')!r}])\n"
                "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        seen[preset] = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert seen == {"light": "PASSIVE None True", "full": "None 10000 True"}


def test_bench_runs_presets_with_different_policies_apart(tiny_weights, tmp_path, no_user_policy, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--weights", str(tiny_weights), "--clips", "1", "--clip-seconds", "1", "--height", "360",
                       "--presets", "light,full", "--repeats", "1", "--clip-dir", str(tmp_path / "clips"),
                       "--json", str(out), "--device", "cpu"]) == 0
    results = json.loads(out.read_text())
    assert [p["preset"]["name"] for p in results["presets"]] == ["light", "full"]
    light, full = results["presets"]
    assert light["openmp"] == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None}
    assert full["openmp"] == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "10000"}
    assert light["end_to_end_s_per_video"] > 0 and full["end_to_end_s_per_video"] > 0
    printed = capsys.readouterr().out
    assert "|  light |" in printed and "|   full |" in printed and "PASSIVE" in printed
