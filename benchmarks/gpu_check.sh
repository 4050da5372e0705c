#!/usr/bin/env bash
# The device checks of issue 22, as one prepared script for a lent GPU (the `run` tool):
# the CUDA tests, then the GPU benchmarks, each bounded so that the whole fits ~9 minutes.
# Results land under benchmarks/results/ (and $OUT when set, for the tool to bring back).
#   bash benchmarks/gpu_check.sh            # assumes .venv with the CUDA torch build
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 180 $PY -m pytest -q -p no:cacheprovider tests/cuda 2>&1 | tail -25 | tee "$OUT/cuda-tests.txt"
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9-')
timeout 90 $PY benchmarks/step_time.py --device cuda --batches 1024 8192 65536 --steps 300 --tag "gpu-$card"
timeout 90 $PY benchmarks/step_time.py --device cuda --cuda-graph --batches 1024 8192 65536 --steps 300 \
    --tag "gpu-graph-$card"
timeout 120 $PY benchmarks/step_time.py --device cuda --members 2 4 8 --batches 1024 --steps 200 \
    --tag "gpu-members-$card"
timeout 90 $PY benchmarks/throughput.py --device cuda --max-batch 10000000 --tag "gpu-$card"
cp -r benchmarks/results "$OUT/" 2>/dev/null || true
