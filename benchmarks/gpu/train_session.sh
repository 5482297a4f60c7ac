#!/usr/bin/env bash
# One GPU call: the training-throughput table on real complexes, then a time-boxed run of the score
# stage of the default (DisCo) model, then the weights split into files small enough to commit.
#
# Run through the device tool from the repository root (on nvidia-h200-x2 it trains on both GPUs), carrying
# cache/ (cache/train.cache.pt and cache/val.cache.pt from `discodock prepare`):
#   TRAIN_MINUTES=4.5 bash benchmarks/gpu/train_session.sh
# INIT_FROM=checkpoints/disco_small continues the committed networks (warm start); RESUME_FROM=runs/small/last.pt
# continues exactly where a run on the same (still warm) machine stopped.
# Results land in $OUT: train_throughput.{json,md}, train.jsonl, run.log and the network folder's files
# (score_model{,_ema}.pt, encoder.pt, training_state.json) to copy back into checkpoints/disco_small/.
set -euo pipefail
# Training needs no RDKit/Biopython; wheels are installed only if carried (for other benchmarks).
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
NGPU=$(python3 -c 'import torch; print(torch.cuda.device_count())')
CONFIG=${CONFIG:-configs/train_small.yaml}
RUN_DIR=${RUN_DIR:-runs/small}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

python3 benchmarks/train_throughput.py --cache cache/train.cache.pt --config "$CONFIG" --devices cuda \
    --batch-sizes ${BATCH_SIZES:-16 24 48} --warmup 3 --steps 10 --out "$OUT/train_throughput.json" \
    | tee "$OUT/train_throughput.md"

RESUME=()
[ -n "${RESUME_FROM:-}" ] && RESUME=(--resume "$RESUME_FROM")
[ -n "${INIT_FROM:-}" ] && RESUME=(--init-from "$INIT_FROM")
LAUNCH=(python3)
[ "$NGPU" -gt 1 ] && LAUNCH=(torchrun --standalone --nproc_per_node "$NGPU")
"${LAUNCH[@]}" -m discodock train --config "$CONFIG" --max-wall-minutes "${TRAIN_MINUTES:-4.5}" "${RESUME[@]}" \
    2>&1 | tee "$OUT/run.log" | grep -v '"event": "train"' || true
cp "$RUN_DIR/train.jsonl" "$OUT/"
cp "$RUN_DIR"/networks/* "$OUT/"
ls -la "$OUT"
