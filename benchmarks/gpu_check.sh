#!/usr/bin/env bash
# One prepared check for a machine with one CUDA GPU, ≤ 5 minutes: the CUDA-marked tests, a 1-GPU nccl
# torchrun smoke run of train.py, and a CIFAR-10-shaped throughput table at fp32 / bf16 / bf16 + compile.
# Prints one table at the end (also benchmarks/results/gpu_check.md). Run from the repository root:
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT" /tmp/gpu-check
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU here'; print(torch.cuda.get_device_name(0), torch.__version__)"

echo "== CUDA tests"
"$PY" -m pytest -q -m cuda tests/test_cuda.py 2>&1 | tail -n 3 | tee /tmp/gpu-check/pytest.txt

echo "== 1-GPU torchrun (nccl) smoke run"
"$PY" dataset_tool.py --source sklearn-digits --dest /tmp/gpu-check/digits.zip --overwrite > /dev/null
"$PY" -m torch.distributed.run --standalone --nproc_per_node=1 train.py --preset digits-infonoise \
    --data /tmp/gpu-check/digits.zip --outdir /tmp/gpu-check/runs --duration 0.02 --tick 5 --precision bf16 \
    2>&1 | tail -n 3 | tee /tmp/gpu-check/torchrun.txt

echo "== CIFAR-10-shaped throughput (DDPM++ 55.7 M, batch 64)"
"$PY" benchmarks/throughput.py --presets cifar10 --devices cuda --precisions fp32,bf16,bf16+compile --batch 64 \
    --repeats 5 --steps 10 --warmup 3 --sample-steps "" --out-dir /tmp/gpu-check
cp /tmp/gpu-check/throughput.md "$OUT/gpu_check.md"
{ echo; echo "pytest -m cuda: $(tail -n 1 /tmp/gpu-check/pytest.txt)"; echo "torchrun: $(tail -n 1 /tmp/gpu-check/torchrun.txt)"; } >> "$OUT/gpu_check.md"
cat "$OUT/gpu_check.md"
