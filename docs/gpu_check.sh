#!/usr/bin/env bash
# The GPU measurement of issue #6, as one script, run from the repository root on a machine with one GPU.
# Results go to ${OUT:-runs/gpu_check}/ as JSON and text: the GPU-only tests, then bench of the light and full
# presets with NVDEC (torchcodec, where it loads) and with decord, eager and with torch.compile.
#
# With network access (a Kaggle notebook with internet, a cloud VM): it installs the pinned stack itself.
# Without (this workplace's lent GPU machines: Python 3.12, torch 2.11, no PyPI), carry what it lacks:
#   echo /.whl/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2010_x86_64 -d .whl decord==0.6.0 facenet-pytorch==2.5.3
#   python -m deepfake_kernel.bench --presets light --clips 3   # makes runs/bench/clips (PyAV is not there)
# and carry .whl and runs/bench/clips. Measured here on 2026-11-27: the tracked tree is 50.5 MiB (45 MB of it
# the int8 ResNet-50 and Xception checkpoints) and those wheels 14.8 MiB, over the 64 MiB that travels to a lent
# machine, so the shipped ensemble could not be measured there; this script is ready for a machine with pip.
set -euo pipefail
out="${OUT:-runs/gpu_check}"
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] && ! ldconfig -p | grep -q "libavcodec.so"; then
    timeout 300 apt-get install -y -q --no-install-recommends libavcodec59 libavformat59 libavutil57 libswscale6 \
      libswresample4 libavdevice59 libavfilter8 >/dev/null 2>&1 || echo "no FFmpeg libraries: NVDEC off"
  fi
  python3 -m pip install -q -r requirements.txt -e . 2>&1 | tail -2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
# the GPU-only test (NVDEC frames against the CPU decode) and the fast-path/compile tests, on the GPU
python3 -m pytest -q tests/test_video.py tests/test_models.py tests/test_bench.py tests/test_detector.py 2>&1 \
  | tail -5 | tee "$out/tests.txt" || true
bench() { python3 -m deepfake_kernel.bench --device cuda --clips 3 "$@"; }
bench --presets light full --json "$out/bench_gpu.json" | tee "$out/bench_gpu.txt"
bench --presets full --reader decord --json "$out/bench_gpu_decord.json" | tee "$out/bench_gpu_decord.txt"
bench --presets full --compile max-autotune-no-cudagraphs --json "$out/bench_gpu_compile.json" \
  | tee "$out/bench_gpu_compile.txt"
