#!/usr/bin/env bash
# One GPU call: on each GPU, tune a checkpoint's sampling temperatures on the validation cache
# (benchmarks/tune_temperatures.py --write-checkpoint) and then sample the PDBBind benchmark inputs with
# them (python -m discodock.benchmark.sample_inputs --temperatures tuned); optionally the screening
# throughput afterwards on one GPU.
#
# Run through the device tool from the repository root, carrying cache/val.cache.pt and
# .gpu/bench_inputs.pt (and .gpu/screen_inputs.pt for SCREEN):
#   JOB0="checkpoints/disco_small disco pocket" JOB1="checkpoints/nolatent_small nolatent pocket" SCREEN=0 \
#   bash benchmarks/gpu/tune_and_sample.sh
# JOBi = "CHECKPOINT NAME [VARIANT ...]" runs on GPU i: NAME is the benchmark's method name (blind:
# NAME, pocket: NAME-pocket); no variant: tuning only; several jobs separated by ";" run one after the
# other. TUNE=0 skips the tuning (the checkpoint's sampling.json as it is), TUNE_GPUS="1" limits it to the
# jobs of those GPUs; TUNE_ARGS adds arguments to
# tune_temperatures.py (e.g. "--candidates diffdock-s --pocket-sigmas 19 10 5 3 2" with TUNE_WRITE=0: a
# pocket prior spread sweep that leaves sampling.json alone). SAMPLE_TIMEOUT caps each sampling run
# (seconds, default 480; DisCo's blind run of the 346 test complexes takes about 400).
# PRIOR="CONFIG CHECKPOINT MINUTES": first, on GPU 0, train the prior of CHECKPOINT's networks (warm start
# from its prior.pt) and copy the best one (best_networks/prior.pt) into CHECKPOINT; jobs of any GPU
# that name CHECKPOINT wait for it. The prior's run folder goes to $OUT/<run>.tgz.
# SCREEN=i: GPU i then docks the ligands of .gpu/screen_inputs.pt (written on the CPU machine by
# `python benchmarks/screening.py --smiles-file .screen/screen.smi --ligands 500 --samples 10 --device cpu
# --export-inputs .gpu/screen_inputs.pt`) with its checkpoint: the H200 screening throughput.
# Results in $OUT: tune_<NAME>/ (tuning.json, tuning.md, sampling.json), samples/<method>.samples.pt,
# one log per job (NAME-gpuI.log), screening/ and screening.log.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p /tmp/methods "$OUT/samples"

read -r PRIOR_CONFIG PRIOR_CHECKPOINT PRIOR_MINUTES <<<"${PRIOR:-}"
train_prior() {  # on GPU 0: the prior of PRIOR_CHECKPOINT's encoder, its best copied into that folder
    local dir
    dir=$(python3 -c "import sys; from discodock.training.config import load_experiment as l
print(l(sys.argv[1], sys.argv[2:]).train.checkpoint_dir)" "$PRIOR_CONFIG")
    mkdir -p "$dir"
    CUDA_VISIBLE_DEVICES=0 python3 -m discodock train --config "$PRIOR_CONFIG" --device cuda \
        --init-from "$PRIOR_CHECKPOINT" --max-wall-minutes "$PRIOR_MINUTES" \
        --set "train.score_weights=$PRIOR_CHECKPOINT" >"$dir/run.log" 2>&1
    grep '"event": "validation"\|stage prior' "$dir/run.log" | tail -n 12 | sed "s/^/[prior] /"
    cp "$dir/best_networks/"prior* "$PRIOR_CHECKPOINT/"
    tar czf "$OUT/$(basename "$dir").tgz" -C "$dir" best_networks train.jsonl run.log
    touch /tmp/prior.done
}

gpu_job() {  # GPU CHECKPOINT NAME [VARIANT ...]
    local gpu=$1 checkpoint=$2 name=$3 variant
    shift 3
    local log=$OUT/$name-gpu$gpu.log
    if [ -n "${PRIOR:-}" ] && [ "$checkpoint" = "$PRIOR_CHECKPOINT" ]; then
        while [ ! -e /tmp/prior.done ]; do sleep 2; done
    fi
    if [ "${TUNE:-1}" = 1 ] && [[ " ${TUNE_GPUS:-$gpu} " == *" $gpu "* ]]; then
        local write=(--write-checkpoint)
        [ "${TUNE_WRITE:-1}" = 0 ] && write=()
        # shellcheck disable=SC2086  # TUNE_ARGS: separate words
        CUDA_VISIBLE_DEVICES=$gpu python3 benchmarks/tune_temperatures.py --checkpoint "$checkpoint" \
            "${write[@]}" ${TUNE_ARGS:-} --device cuda --out "$OUT/tune_$name" >>"$log" 2>&1
        cp "$checkpoint/sampling.json" "$OUT/tune_$name/" 2>>"$log"
    fi
    local method=/tmp/methods/gpu$gpu/$name  # the method is named after the folder: a copy per GPU
    rm -rf "$method"
    mkdir -p "$(dirname "$method")"
    cp -rL "$checkpoint" "$method"
    local variants=()
    for variant in "$@"; do
        variants+=(--variant "$variant")
    done
    if [ ${#variants[@]} -gt 0 ]; then
        CUDA_VISIBLE_DEVICES=$gpu timeout "${SAMPLE_TIMEOUT:-480}" python3 -m discodock.benchmark.sample_inputs \
            --inputs .gpu/bench_inputs.pt --checkpoint "$method" --out "$OUT/samples" \
            --device cuda --temperatures tuned "${variants[@]}" >>"$log" 2>&1
    fi
    if [ "${SCREEN:-}" = "$gpu" ]; then  # the ligands of .gpu/screen_inputs.pt, docked with this checkpoint
        CUDA_VISIBLE_DEVICES=$gpu python3 -m discodock.benchmark.sample_inputs --inputs .gpu/screen_inputs.pt \
            --checkpoint "$method" --out "$OUT/screening" --device cuda --temperatures tuned \
            >"$OUT/screening.log" 2>&1
    fi
    grep -v "^INFO\|it/s\]" "$log" | tail -n 25 | sed "s/^/[GPU $gpu] /"
}

gpu_jobs() {  # GPU JOBS: the ";"-separated jobs of one GPU, in order (GPU 0: after the prior)
    local gpu=$1 job
    [ "$gpu" = 0 ] && [ -n "${PRIOR:-}" ] && train_prior
    IFS=';' read -ra jobs <<<"$2"
    for job in "${jobs[@]}"; do
        # shellcheck disable=SC2086  # the job's words are separate arguments
        gpu_job "$gpu" $job
    done
}

rm -f /tmp/prior.done
pids=()
for gpu in 0 1 2 3; do
    job_var=JOB$gpu
    if [ -z "${!job_var:-}" ] && ! { [ "$gpu" = 0 ] && [ -n "${PRIOR:-}" ]; }; then
        continue  # no jobs (GPU 0 still trains PRIOR)
    fi
    gpu_jobs "$gpu" "${!job_var:-}" &
    pids+=($!)
done
wait "${pids[@]}"
cat "$OUT"/tune_*/tuning.md "$OUT/screening.log" 2>/dev/null
ls -la "$OUT" "$OUT/samples"
