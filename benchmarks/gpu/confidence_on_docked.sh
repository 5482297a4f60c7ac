#!/usr/bin/env bash
# One GPU call for the confidence model on docked poses (configs/train_confidence_docked_small.yaml): dock the
# training cache with the shipped networks (one shard per GPU) and the validation cache (on GPU 0 after its
# shard), then train the confidence model on all GPUs (DDP through train_parallel.sh's JOBALL), warm-started
# from the shipped confidence model.
#
# Run through the device tool from the repository root, carrying cache/ (train and val caches):
#   CHECKPOINT=checkpoints/disco_small SAMPLES=8 MINUTES=4 bash benchmarks/gpu/confidence_on_docked.sh
# (FRACTION: the share of docked training poses, default 0.5).
# With docked/ carried (or left on a still-warm machine) and DOCK=0 it only trains. Results in $OUT:
# docked/*.pt (the docked poses, a few MB), dock-*.log and train_parallel.sh's <run>.tgz.part-*.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
CHECKPOINT=${CHECKPOINT:-checkpoints/disco_small}
NGPU=$(python3 -c 'import torch; print(torch.cuda.device_count())')
mkdir -p docked "$OUT/docked"
if [ "${DOCK:-1}" = 1 ]; then
    pids=()
    for gpu in $(seq 0 $((NGPU - 1))); do
        (
            export CUDA_VISIBLE_DEVICES=$gpu
            python3 -m discodock dock-cache --cache cache/train.cache.pt --checkpoint "$CHECKPOINT" \
                --samples "${SAMPLES:-8}" --shard "$gpu/$NGPU" -o "docked/train-$gpu.pt" --quiet
            if [ "$gpu" = 0 ]; then
                python3 -m discodock dock-cache --cache cache/val.cache.pt --checkpoint "$CHECKPOINT" \
                    --samples "${SAMPLES:-8}" -o docked/val.pt --quiet
            fi
        ) >"$OUT/dock-$gpu.log" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}"
    cat "$OUT"/dock-*.log
    cp docked/*.pt "$OUT/docked/" || exit 1
fi
[ "${MINUTES:-0}" = 0 ] && exit 0
JOBALL="configs/train_confidence_docked_small.yaml ${INIT_FROM:-$CHECKPOINT} $MINUTES \
model.confidence.sampled_pose_fraction=${FRACTION:-0.5}" bash benchmarks/gpu/train_parallel.sh
