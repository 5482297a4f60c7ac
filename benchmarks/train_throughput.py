"""Training throughput of the score stage: complexes and noised poses per second, per device, batch
size and number of noise copies per complex.

One timed step = gather a batch of real complexes from the cache (on the device), with the config's
pocket share and ``noise_copies`` pose copies each (:func:`discodock.training.trainer.training_batches`),
noising (t, pose perturbation, score targets), the latent encoder and straight-through tokens, the
score network forward, the loss, backward and the Adam step: exactly
:class:`discodock.training.trainer.ScoreStage`'s step.

Usage (from the repository root)::

    python benchmarks/train_throughput.py --cache cache/train.cache.pt --config configs/train_small.yaml \
        --devices cpu cuda --batch-sizes 16 32 --noise-copies 1 4 --out throughput.json

Prints a Markdown table (and writes it as JSON with ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from discodock.data.cache import ComplexCache
from discodock.model.layers import compile_tensor_products
from discodock.training.config import load_experiment
from discodock.training.trainer import ProcessGroup, ScoreStage, training_batches


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    config_path: str,
    cache: ComplexCache,
    device: torch.device,
    batch_size: int,
    warmup: int,
    steps: int,
    compiled: bool = False,
    noise_copies: int = 1,
) -> dict[str, float | int | str | bool]:
    """Time ``steps`` optimiser steps after ``warmup`` untimed ones; complexes/s, poses/s, peak memory.

    ``compiled``: tensor products compiled with ``torch.compile`` (the warm-up steps absorb compilation).
    """
    experiment = load_experiment(config_path)
    experiment = dataclasses.replace(
        experiment,
        train=dataclasses.replace(experiment.train, batch_size=batch_size, noise_copies=noise_copies),
    )
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = experiment.train.allow_tf32
        torch.cuda.reset_peak_memory_stats(device)
    stage = ScoreStage(experiment, ProcessGroup(0, 1, device), cache, None)
    if compiled:
        for network in stage.export().values():
            compile_tensor_products(network)
    optimizer = torch.optim.Adam(stage.trainable_parameters(), lr=experiment.train.lr)
    generator = torch.Generator(device).manual_seed(0)
    order = torch.Generator().manual_seed(0)

    def step() -> None:
        index = torch.randint(len(cache), (batch_size,), generator=order)
        batch, complexes = training_batches(cache, index, experiment.train, experiment.model.score, generator)
        losses = stage.loss(batch, generator, complexes)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        stage.after_step()

    for _ in range(warmup):
        step()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "config": config_path,
        "batch_size": batch_size,
        "noise_copies": noise_copies,
        "compiled": compiled,
        "steps": steps,
        "seconds": round(seconds, 3),
        "complexes_per_s": round(batch_size * steps / seconds, 2),
        "poses_per_s": round(batch_size * noise_copies * steps / seconds, 2),
        "peak_gpu_memory_gib": round(peak, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", required=True)
    parser.add_argument("--config", default="configs/train_small.yaml")
    parser.add_argument("--devices", nargs="+", default=["cpu"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16])
    parser.add_argument(
        "--cpu-batch-sizes", nargs="+", type=int, help="batch sizes on the CPU (default: --batch-sizes)"
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["eager", "compiled"],
        default=["eager"],
        help="eager and/or torch.compile'd tensor products (GPU only; the CPU runs eager)",
    )
    parser.add_argument("--noise-copies", nargs="+", type=int, default=[1])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cpu-steps", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    rows = []
    for name in args.devices:
        device = torch.device(name)
        cache = ComplexCache.load(args.cache, device)
        on_cpu = device.type == "cpu"
        for mode in ["eager"] if on_cpu else args.modes:
            for batch_size in (args.cpu_batch_sizes or args.batch_sizes) if on_cpu else args.batch_sizes:
                steps, warmup = (args.cpu_steps, 1) if on_cpu else (args.steps, args.warmup)
                for copies in args.noise_copies:
                    row = measure(
                        args.config, cache, device, batch_size, warmup, steps, mode == "compiled", copies
                    )
                    rows.append(row)
                    print(json.dumps(row), flush=True)

    print(
        "\n| device | config | tensor products | batch | noise copies | steps | complexes/s | poses/s "
        "| peak GPU memory (GiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        mode = "compiled" if row["compiled"] else "eager"
        print(
            f"| {row['device']} | {row['config']} | {mode} | {row['batch_size']} | {row['noise_copies']} | "
            f"{row['steps']} | {row['complexes_per_s']} | {row['poses_per_s']} | "
            f"{row['peak_gpu_memory_gib']} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"cache": args.cache, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
