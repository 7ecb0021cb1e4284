#!/usr/bin/env bash
# The one-GPU run behind results/bench-gpu/ and results/bench-paper-speed/ (see their README rows).
# Runs from the repository root on a machine whose python3 has torch + lightning + torchmetrics +
# transformers but no internet. Prepared here beforehand:
#   .whl/   wheels of what that image lacks (omegaconf, librosa, soundfile, soxr, audioread, decorator,
#           pooch, platformdirs, cffi, pycparser), downloaded with `pip download --python-version 3.12 ...`
#   data/shards/eval-512/   `ditto2 shards-subset data/shards/demo-tiny data/shards/eval-512 --n 512`
#   data/shards/eval-512/text-features.safetensors   `ditto2 text-features --shards data/shards/demo-tiny ...`
# Each stage has its own time limit, so the archive of whatever finished is always written.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 MPLBACKEND=Agg TQDM_DISABLE=1
export DITTO2_TEXT_FEATURES=data/shards/eval-512/text-features.safetensors
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__, torch.cuda.get_device_name())"
stage() {  # name, seconds, command...
  local name=$1 secs=$2; shift 2
  local t0=$SECONDS
  timeout "$secs" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc after $((SECONDS - t0)) s"
  grep -v -i -E "warn|tip:|litlogger" "$OUT/$name.log" | tail -n "${TAIL:-12}"
  return $rc
}
TAIL=6 stage smoke "${SMOKE_S:-110}" python3 -m ditto2.bench.ito --config experiments/bench/smoke-gpu.yaml || exit 2
TAIL=8 stage paper-speed "${PAPER_S:-100}" python3 -m ditto2.bench.paper_speed --batch 1 8 --out results/bench-paper-speed
TAIL=60 stage tables "${TABLES_S:-350}" python3 -m ditto2.bench.ito --config experiments/bench/tables-gpu.yaml
tar czf "$OUT/results.tgz" --exclude='*.wav' --exclude='embeddings.*' results/bench-gpu results/bench-paper-speed 2>/dev/null
ls -la "$OUT"
