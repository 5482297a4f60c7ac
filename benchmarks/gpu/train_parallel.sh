#!/usr/bin/env bash
# One GPU call that trains several independent runs side by side, one per GPU (e.g. the DisCo model and
# its no-latent ablation on the two H200s of nvidia-h200-x2, for equal budgets), optionally after the
# training-throughput table on GPU 0.
#
# Run through the device tool from the repository root, carrying cache/ (train and val caches of
# `discodock prepare`):
#   THROUGHPUT=1 \
#   JOB0="configs/train_small.yaml checkpoints/disco_small 6.5" \
#   JOB1="configs/train_small_nolatent.yaml - 9" \
#   bash benchmarks/gpu/train_parallel.sh
# JOBi = "CONFIG INIT_FROM MINUTES [KEY=VALUE ...]" runs on GPU i (INIT_FROM "-": from scratch; a network folder such as
# checkpoints/disco_small: warm start; a last.pt: exact resume; "A|B": the first of A, B that exists, e.g.
# runs/small/last.pt left on a still-warm machine by the previous call, else a carried folder; KEY=VALUE:
# `discodock train --set` overrides, e.g. train.weight_decay=0.05 train.checkpoint_dir=runs/a
# train.log_path=runs/a/train.jsonl for an A/B arm); several jobs separated by ";" run one after the other on that GPU
# (e.g. the score stage, then the prior on the networks it wrote). A config with `compile_tensor_products: true` that fails to
# start is run again eagerly. Results in $OUT: train_throughput.{json,md} and, per job, <run>.tgz.part-*
# (the run folder's networks/, best_networks/, train.jsonl and run.log, split into pieces the device tool
# returns).
# JOBALL = jobs in the same form that run first, each on all GPUs at once (DDP through torchrun, e.g. one
# ~20 GPU-minute run of the default model on the two H200s); the per-GPU jobs start after them.
# DEADLINE_MINUTES caps job 0's training so that it ends that long after the start despite the table.
#   cat <run>.tgz.part-* | tar xz   # then copy networks/* into checkpoints/<model>/
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
NGPU=$(python3 -c 'import torch; print(torch.cuda.device_count())')
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

run_dir() {  # CONFIG [KEY=VALUE ...]: checkpoint_dir of a training config with its overrides
    python3 -c "import sys; from discodock.training.config import load_experiment as l
print(l(sys.argv[1], sys.argv[2:]).train.checkpoint_dir)" "$@"
}

train_job() {  # GPU|all CONFIG INIT_FROM MINUTES [KEY=VALUE ...]
    local gpu=$1 config=$2 init=$3 minutes=$4 dir override
    shift 4
    dir=$(run_dir "$config" "$@")
    mkdir -p "$dir"
    local args=(-m discodock train --config "$config" --max-wall-minutes "$minutes" --device cuda)
    for override in "$@"; do
        args+=(--set "$override")
    done
    if [ "$init" != "-" ]; then
        local found="" choice
        IFS='|' read -ra choices <<<"$init"
        for choice in "${choices[@]}"; do
            [ -e "$choice" ] && found=$choice && break
        done
        if [ -z "$found" ]; then
            echo "GPU $gpu: none of $init exists; $config not run" | tee "$dir/run.log"
            return
        fi
        case "$found" in
        *.pt) args+=(--resume "$found") ;;
        *) args+=(--init-from "$found") ;;
        esac
        echo "GPU $gpu: $config from $found"
    fi
    local launch=(env CUDA_VISIBLE_DEVICES="$gpu" python3)
    [ "$gpu" = all ] && launch=(torchrun --standalone --nproc_per_node "$NGPU")
    "${launch[@]}" "${args[@]}" >"$dir/run.log" 2>&1
    if [ $? -ne 0 ] && grep -q "compile_tensor_products: true" "$config" && ! grep -q '"event": "train"' "$dir/train.jsonl" 2>/dev/null; then
        echo "GPU $gpu: $config failed to start compiled; running it eagerly" | tee -a "$dir/run.log"
        local eager=${config%.yaml}_eager.yaml
        sed 's/compile_tensor_products: true/compile_tensor_products: false/' "$config" >"$eager"
        args[4]=$eager
        "${launch[@]}" "${args[@]}" >>"$dir/run.log" 2>&1
    fi
    grep -v '"event": "train"\|"event": "start"\|"event": "checkpoint"' "$dir/run.log" | tail -n 12 | sed "s/^/[GPU $gpu] /"
    local name
    name=$(basename "$dir")
    local best=()
    [ -d "$dir/best_networks" ] && best=(best_networks)
    tar czf - -C "$dir" networks "${best[@]}" train.jsonl run.log | split -b 15m - "$OUT/$name.tgz.part-"
}

if [ "${THROUGHPUT:-0}" = 1 ]; then
    JOB0_DELAY=1
fi
gpu_jobs() {  # GPU JOBS: the ";"-separated jobs of one GPU, in order
    local gpu=$1 job config init minutes overrides
    IFS=';' read -ra jobs <<<"$2"
    for job in "${jobs[@]}"; do
        read -r config init minutes overrides <<<"$job"
        if [ "$gpu" = 0 ] && [ -n "${JOB0_DELAY:-}" ] && [ "$job" = "${jobs[0]}" ]; then
            CUDA_VISIBLE_DEVICES=0 python3 benchmarks/train_throughput.py --cache cache/train.cache.pt \
                --config "$config" --devices cuda --modes eager compiled --batch-sizes ${BATCH_SIZES:-48 64} \
                --warmup 3 --steps 10 --out "$OUT/train_throughput.json" >"$OUT/train_throughput.md" 2>&1
            cat "$OUT/train_throughput.md"
            if [ -n "${DEADLINE_MINUTES:-}" ]; then  # what is left of the call after the table, with a margin
                minutes=$(python3 -c "print(round(min($minutes, $DEADLINE_MINUTES - $SECONDS / 60 - 0.7), 2))")
            fi
        fi
        # shellcheck disable=SC2086  # the overrides are separate words
        train_job "$gpu" "$config" "$init" "$minutes" $overrides
    done
}

[ -n "${JOBALL:-}" ] && gpu_jobs all "$JOBALL"
pids=()
for gpu in $(seq 0 $((NGPU - 1))); do
    job_var=JOB$gpu
    [ -z "${!job_var:-}" ] && continue
    gpu_jobs "$gpu" "${!job_var}" &
    pids+=($!)
done
wait "${pids[@]}"
ls -la "$OUT"
