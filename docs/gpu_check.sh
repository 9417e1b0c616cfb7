#!/usr/bin/env bash
# The GPU measurement of issue #6, as one script (run from the repository root on a machine with one GPU):
# installs the pinned stack, then benches the light and full presets with NVDEC decoding (torchcodec) and with
# decord, eager and with torch.compile. Results go to ${OUT:-runs/gpu_check}/ as JSON and text.
set -euo pipefail
out="${OUT:-runs/gpu_check}"
mkdir -p "$out"
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] && ! ldconfig -p | grep -q "libavcodec.so"; then
  apt-get install -y -q --no-install-recommends libavcodec59 libavformat59 libavutil57 libswscale6 \
    libswresample4 libavdevice59 libavfilter8 >/dev/null 2>&1 || echo "no FFmpeg libraries: NVDEC off"
fi
python -m pip install -q -r requirements.txt -e . 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
# the GPU-only tests (NVDEC frames against the CPU decode) and the fast-path/compile tests, on the GPU
python -m pytest -q tests/test_video.py tests/test_models.py tests/test_bench.py tests/test_detector.py 2>&1 \
  | tail -5 | tee "$out/tests.txt"
bench() { python -m deepfake_kernel.bench --device cuda --clips 3 "$@"; }
bench --presets light full --json "$out/bench_gpu.json" | tee "$out/bench_gpu.txt"
bench --presets full --reader decord --json "$out/bench_gpu_decord.json" | tee "$out/bench_gpu_decord.txt"
bench --presets full --compile max-autotune-no-cudagraphs --json "$out/bench_gpu_compile.json" \
  | tee "$out/bench_gpu_compile.txt"
