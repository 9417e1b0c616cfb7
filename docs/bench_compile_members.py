"""Members only: eager vs torch.compile (default), 32 crops per call, interleaved rounds, median seconds.

Run from the repository root: python docs/bench_compile_members.py (output recorded in docs/bench_cpu_compile.txt)."""
import statistics
import time

import numpy as np

from deepfake_kernel.detectors.weights import load_member, read_manifest
manifest = read_manifest("weights")
crops = np.random.default_rng(0).integers(0, 255, (32, 128, 128, 3), dtype=np.uint8)
eager = {e.name: load_member(e, "weights", "cpu") for e in manifest.members}
compiled = {e.name: load_member(e, "weights", "cpu").compile_network() for e in manifest.members}
for name, m in compiled.items():
    t = time.perf_counter(); m.predict_proba(crops, 16); print(name, "compile", round(time.perf_counter() - t, 1), "s")
    assert np.abs(m.predict_proba(crops, 16) - eager[name].predict_proba(crops, 16)).max() < 1e-4
times = {(k, n): [] for k in ("eager", "compiled") for n in eager}
for _ in range(7):
    for kind, members in (("eager", eager), ("compiled", compiled)):
        for name, m in members.items():
            t = time.perf_counter(); m.predict_proba(crops, 16); times[(kind, name)].append(time.perf_counter() - t)
for name in eager:
    e, c = statistics.median(times[("eager", name)]), statistics.median(times[("compiled", name)])
    print(f"{name}: eager {e:.3f} s, compiled {c:.3f} s per 32 crops ({(1 - c / e) * 100:.0f}% less)")
