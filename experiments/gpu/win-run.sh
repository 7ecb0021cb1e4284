#!/usr/bin/env bash
# One GPU call for the "DITTO-2 must win" table: experiments/bench/win-gpu.yaml (DITTO vs CM vs CTM, each with its
# per-control defaults, n = 160 test-split items per cell, FAD). Same machine setup as experiments/bench/gpu-run.sh
# (.whl/ wheels, PYTHONPATH); prepared here beforehand:
#   ditto2 shards-subset data/shards/debian-tiny data/shards/test-512 --n 512
# ~1.5 min per DITTO cell and ~10 s per DITTO-2 cell on an H200 (results/bench-gpu), so the table fits one call.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 MPLBACKEND=Agg TQDM_DISABLE=1
timeout "${WIN_S:-540}" python3 -m ditto2.bench.ito --config experiments/bench/win-gpu.yaml > "$OUT/win.log" 2>&1
echo "win table: rc=$?"; tail -n 30 results/bench-win-gpu/results.md
tar czf "$OUT/results.tgz" --exclude='*.wav' --exclude='embeddings.*' results/bench-win-gpu 2>/dev/null
