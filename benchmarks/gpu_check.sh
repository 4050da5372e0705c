#!/usr/bin/env bash
# The device checks of issue 22, prepared for a lent GPU (the `run` tool, ≤ 10 minutes a call):
#   bash benchmarks/gpu_check.sh tests   # the CUDA tests (tests/cuda, tests/generative/test_cuda.py)
#   bash benchmarks/gpu_check.sh speed   # step time (eager, CUDA graph, stacked 2/4/8), throughput
#   bash benchmarks/gpu_check.sh fhn     # FitzHugh–Nagumo accuracy after 5 GPU-minutes
# Results land under benchmarks/results/ and, when $OUT is set (the tool's), are copied there.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9-')
case "${1:-tests}" in
  tests)
    timeout 400 $PY -m pytest -q -p no:cacheprovider tests/cuda tests/generative/test_cuda.py 2>&1 \
      | tail -40 | tee "$OUT/cuda-tests.txt" ;;
  speed)
    timeout 100 $PY benchmarks/step_time.py --device cuda --batches 1024 8192 65536 --steps 300 --tag "gpu-$card"
    timeout 100 $PY benchmarks/step_time.py --device cuda --cuda-graph --batches 1024 8192 65536 --steps 300 \
      --tag "gpu-graph-$card"
    timeout 150 $PY benchmarks/step_time.py --device cuda --members 2 4 8 --batches 1024 --steps 200 \
      --tag "gpu-members-$card"
    timeout 120 $PY benchmarks/throughput.py --device cuda --max-batch 10000000 --tag "gpu-$card" ;;
  fhn)
    timeout 500 $PY benchmarks/accuracy.py --systems fitzhugh_nagumo --objectives pairs --device cuda \
      --cuda-graph --minutes 5 --tag "gpu-fhn-$card" ;;
esac
cp -r benchmarks/results "$OUT/" 2>/dev/null || true
