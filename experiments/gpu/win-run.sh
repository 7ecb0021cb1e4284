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
# PART=win (the table), scale (the paper-preset checks of the scale-out issue: bf16-mixed and torch.compile steps/s
# and peak memory for pretraining and one DITTO-2 generation, ~4 min), all (win + scale: two device calls' worth), or
# ditto-lr: DITTO's own Adam step size per control on 32 validation items (the students' were tuned the same way,
# results/ito-lr/val; DITTO's 5e-3 never was) -> record the winners as defaults_by_method: {ditto: {lr: ...}} in
# experiments/ito/<control>.yaml before PART=win, so the table compares tuned against tuned
# or ditto: only DITTO's cells of results/bench-win-cpu-160 (experiments/bench/win-tiny-ditto-160.yaml: the same items,
# targets, K and FAD reference, data/shards/eval-512, as the committed CPU DITTO-2 cells, so that the pairing script
# results/bench-win-cpu-160/ditto_vs_ditto2.py can read them) into results/bench-win-gpu-ditto, CONTROLS to choose.
# The device takes at most 64 MiB of working tree and the tracked tree is ~96 MB (checkpoints/tiny: 84 MB), so before a
# PART=ditto call park what DITTO does not read and carry the shards (~42 MB in all), then restore:
#   mkdir -p /work/runs/park && mv checkpoints/tiny/{cm,ctm,ctm-decode,ctm-trajectory,ctm-uncond,teacher-uncond}.* \
#     checkpoints/tiny/{clap-judge,tagger}.* /work/runs/park/   # run: carry [data/shards/eval-512]; after: git checkout checkpoints
PART=${PART:-all}
if [ "$PART" = ditto ]; then
  timeout "${DITTO_S:-540}" python3 -m ditto2.bench.ito --config experiments/bench/win-tiny-ditto-160.yaml \
    --out results/bench-win-gpu-ditto --only ${CONTROLS:-melody structure outpainting inpainting} > "$OUT/ditto.log" 2>&1
  echo "ditto cells: rc=$?"; tail -n 12 results/bench-win-gpu-ditto/results.md
  tar czf "$OUT/results.tgz" --exclude='*.wav' --exclude='*.png' results/bench-win-gpu-ditto  # embeddings: FAD pairs
  exit 0
fi
if [ "$PART" = ditto-lr ]; then
  timeout "${DITTO_LR_S:-540}" python3 -m ditto2.bench.interactive --set method=ditto --split val --n 32 --ks 70 \
    --lrs 0.02 0.04 --decays constant --betas 0.9,0.999 --repeats 0 --threads 8 \
    --controls intensity melody structure outpainting inpainting --out results/ditto-lr/val > "$OUT/ditto-lr.log" 2>&1
  echo "ditto step sizes: rc=$?"; cat results/ditto-lr/val/results.md
  tar czf "$OUT/results.tgz" results/ditto-lr
  exit 0
fi
if [ "$PART" != scale ]; then
  timeout "${WIN_S:-540}" python3 -m ditto2.bench.ito --config experiments/bench/win-gpu.yaml > "$OUT/win.log" 2>&1
  echo "win table: rc=$?"; tail -n 30 results/bench-win-gpu/results.md
fi
if [ "$PART" != win ]; then
  timeout "${SCALE_S:-300}" python3 -m ditto2.bench.scale --preset paper --steps 20 --batch 8 \
    --out results/bench-scale-gpu > "$OUT/scale.log" 2>&1
  echo "scale checks: rc=$?"; cat results/bench-scale-gpu/results.md
fi
tar czf "$OUT/results.tgz" --exclude='*.wav' --exclude='embeddings.*' results/bench-win-gpu results/bench-scale-gpu 2>/dev/null
