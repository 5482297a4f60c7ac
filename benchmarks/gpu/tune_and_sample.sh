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
# NAME, pocket: NAME-pocket); no variant: tuning only. TUNE=0 skips the tuning (the checkpoint's
# sampling.json as it is). SAMPLE_TIMEOUT caps each sampling run (seconds, default 400).
# SCREEN=i: GPU i then docks the ligands of .gpu/screen_inputs.pt (written on the CPU machine by
# `python benchmarks/screening.py --smiles-file .screen/screen.smi --ligands 500 --samples 10 --device cpu
# --export-inputs .gpu/screen_inputs.pt`) with its checkpoint: the H200 screening throughput.
# Results in $OUT: tune_<NAME>/ (tuning.json, tuning.md, sampling.json), samples/<method>.samples.pt,
# one log per job, screening/ and screening.log.
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p /tmp/methods "$OUT/samples"

gpu_job() {  # GPU CHECKPOINT NAME [VARIANT ...]
    local gpu=$1 checkpoint=$2 name=$3 variant
    shift 3
    local log=$OUT/$name.log
    if [ "${TUNE:-1}" = 1 ]; then
        CUDA_VISIBLE_DEVICES=$gpu python3 benchmarks/tune_temperatures.py --checkpoint "$checkpoint" \
            --write-checkpoint --device cuda --out "$OUT/tune_$name" >>"$log" 2>&1
        cp "$checkpoint/sampling.json" "$OUT/tune_$name/" 2>>"$log"
    fi
    rm -rf "/tmp/methods/$name"  # the method is named after the folder: a copy (links dereferenced)
    cp -rL "$checkpoint" "/tmp/methods/$name"
    local variants=()
    for variant in "$@"; do
        variants+=(--variant "$variant")
    done
    if [ ${#variants[@]} -gt 0 ]; then
        CUDA_VISIBLE_DEVICES=$gpu timeout "${SAMPLE_TIMEOUT:-400}" python3 -m discodock.benchmark.sample_inputs \
            --inputs .gpu/bench_inputs.pt --checkpoint "/tmp/methods/$name" --out "$OUT/samples" \
            --device cuda --temperatures tuned "${variants[@]}" >>"$log" 2>&1
    fi
    if [ "${SCREEN:-}" = "$gpu" ]; then  # the ligands of .gpu/screen_inputs.pt, docked with this checkpoint
        CUDA_VISIBLE_DEVICES=$gpu python3 -m discodock.benchmark.sample_inputs --inputs .gpu/screen_inputs.pt \
            --checkpoint "/tmp/methods/$name" --out "$OUT/screening" --device cuda --temperatures tuned \
            >"$OUT/screening.log" 2>&1
    fi
    grep -v "^INFO\|it/s\]" "$log" | tail -n 25 | sed "s/^/[GPU $gpu] /"
}

pids=()
for gpu in 0 1 2 3; do
    job_var=JOB$gpu
    [ -z "${!job_var:-}" ] && continue
    # shellcheck disable=SC2086  # the job's words are separate arguments
    gpu_job "$gpu" ${!job_var} &
    pids+=($!)
done
wait "${pids[@]}"
cat "$OUT"/tune_*/tuning.md "$OUT/screening.log" 2>/dev/null
ls -la "$OUT" "$OUT/samples"
