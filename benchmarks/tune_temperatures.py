"""Tune the low-temperature sampling parameters of a checkpoint on the validation cache.

Low-temperature sampling (method.md §1.6; :class:`~discodock.diffusion.sampler.SamplingTemperatures`)
sharpens the reverse SDE per component with an inverse temperature ``T``, a Langevin corrector step ``ψ``
and a data scale ``τ_d``. The released DiffDock-S and DisCo-DiffDock-S values were tuned for other
networks; this script picks among a fixed list of candidates (:func:`candidates`) for one checkpoint
folder, on the validation complexes only (never the test set):

* ``none``: the plain reverse SDE (``SamplingTemperatures()``);
* ``diffdock-s``, ``disco-diffdock-s``: the released presets;
* ``disco-scaled-0.25``, ``disco-scaled-0.5``, ``disco-scaled-1.5``: the DisCo preset scaled by ``α``, per
  component ``T' = T^α``, ``ψ' = α·ψ``, ``τ_d`` unchanged (``α = 0`` would be plain, ``α = 1`` the preset);
* ``disco-tr-only``, ``disco-rot-only``, ``disco-tor-only``: the DisCo preset on one component, the others
  plain.

Each candidate docks every complex ``--samples`` times in two modes, exactly as the ``tokens`` probe of
``benchmarks/cpu_probes.py`` does: *pocket* (receptor cropped around the crystal ligand's centroid with
``discodock predict``'s margin, translation prior centred there) and *blind* (whole receptor, prior at the
protein centre). Tokens come from the checkpoint's prior when it has latents (as ``discodock predict``
draws them), else none. Every candidate and mode starts from a fresh generator with the same ``--seed``
and draws the same random numbers in the same order (priors, tokens, every step's noise), so candidates
differ only by their temperatures. Per candidate and mode: the shares of poses below 2 and 5 Å (plain
RMSD, no symmetry correction; a non-finite pose counts as a miss), the median pose RMSD, the share of
complexes whose top-1 pose (highest confidence logit) is below 2 Å (``nan`` without a confidence model),
and the seconds of sampling. The winner has the largest :func:`selection_score` (ties keep the earlier
candidate, so ``none`` wins unless a candidate is strictly better).

Outputs in ``--out`` (default ``runs/tuning/<checkpoint folder name>``): ``tuning.json`` (arguments,
command, candidates, metrics, scores, chosen name; ``nan`` written as ``null``) and ``tuning.md`` (the
table, also printed). With ``--write-checkpoint`` the winner goes to ``<checkpoint>/sampling.json``
(:func:`sampling_record`).

Usage (from the repository root)::

    python benchmarks/tune_temperatures.py --checkpoint checkpoints/disco_small --write-checkpoint
    python benchmarks/tune_temperatures.py --checkpoint checkpoints/nolatent_small --write-checkpoint
    python benchmarks/tune_temperatures.py --checkpoint checkpoints/disco_small --first 8 --samples 4 \
        --candidates none disco-diffdock-s --device cpu --out runs/tuning/smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from discodock.data.batch import ComplexBatch
from discodock.data.cache import ComplexCache
from discodock.diffusion.noising import sample_training_pockets
from discodock.diffusion.sampler import (
    DIFFDOCK_S_TEMPERATURES,
    DISCO_DIFFDOCK_S_TEMPERATURES,
    ComponentTemperature,
    LatentSource,
    SamplingTemperatures,
    prior_latents,
    sample_poses,
)
from discodock.inference.networks import DEFAULT_POCKET_MARGIN, DEFAULT_POCKET_SIGMA, DockingNetworks
from discodock.model.score_model import ScoreFunction
from discodock.training.trainer import batch_of, pose_rmsd

MODES = ("pocket", "blind")
"""Docking modes: receptor cropped around the crystal ligand with the prior centred there, or whole."""

SCALES = (0.25, 0.5, 1.5)
"""Exponents ``α`` of the scaled DisCo candidates (``T' = T^α``, ``ψ' = α·ψ``)."""

COMPONENTS = ("tr", "rot", "tor")
"""The fields of :class:`SamplingTemperatures`."""

SCRIPT = "benchmarks/tune_temperatures.py"


def scaled(temperature: ComponentTemperature, alpha: float) -> ComponentTemperature:
    """``temperature`` scaled by ``α``: ``T' = T^α``, ``ψ' = α·ψ``, ``τ_d`` unchanged.

    ``α = 0`` gives ``T' = 1`` (the plain step, whatever ``ψ``), ``α = 1`` the temperature itself; in
    between, the drift factor at large σ (``≈ T + T·ψ/2``) and the corrector move smoothly between them.
    """
    return ComponentTemperature(temperature.sampling**alpha, alpha * temperature.psi, temperature.sigma_data)


def candidates() -> dict[str, SamplingTemperatures]:
    """The candidate temperatures, in order of preference on ties (module docstring).

    Returns
    -------
    dict[str, SamplingTemperatures]
        Nine candidates: ``none``, ``diffdock-s``, ``disco-diffdock-s``, ``disco-scaled-{α}`` for ``α`` in
        :data:`SCALES`, ``disco-{tr,rot,tor}-only``.
    """
    disco = DISCO_DIFFDOCK_S_TEMPERATURES
    table = {
        "none": SamplingTemperatures(),
        "diffdock-s": DIFFDOCK_S_TEMPERATURES,
        "disco-diffdock-s": disco,
    }
    for alpha in SCALES:
        components = {name: scaled(getattr(disco, name), alpha) for name in COMPONENTS}
        table[f"disco-scaled-{alpha:g}"] = SamplingTemperatures(**components)
    for name in COMPONENTS:
        table[f"disco-{name}-only"] = dataclasses.replace(
            SamplingTemperatures(), **{name: getattr(disco, name)}
        )
    return table


def selection_score(metrics: dict[str, dict[str, float]]) -> float:
    """The score a candidate is chosen by: mean over the modes of ``(share < 2 Å + share < 5 Å) / 2``.

    Per-pose shares count every sampled pose (``complexes × samples``, e.g. 59 × 8 = 472 per mode), so
    they are much less noisy on ~59 validation complexes than the top-1 success rate, which counts one
    pose per complex (one complex moves it by 1.7 points) and also depends on the confidence model. The
    5 Å share rewards temperatures that bring poses near the pocket even where they miss 2 Å.

    Parameters
    ----------
    metrics
        Per mode (``pocket``, ``blind``) the metrics of :func:`mode_metrics`, with ``below_2`` and
        ``below_5`` in percent.

    Returns
    -------
    float
        In ``[0, 100]``.
    """
    per_mode = [(values["below_2"] + values["below_5"]) / 2 for values in metrics.values()]
    return sum(per_mode) / len(per_mode)


def choose(scores: dict[str, float]) -> str:
    """The candidate with the largest score; ties keep the earliest in ``scores``' order."""
    best = next(iter(scores))
    for name, score in scores.items():
        if score > scores[best]:
            best = name
    return best


def median(values: torch.Tensor) -> float:
    """The median of ``float[N]`` (mean of the two middle values for even ``N``; ``inf`` entries allowed)."""
    return float(np.median(values.double().cpu().numpy()))


def mode_metrics(rmsd: torch.Tensor, top1: torch.Tensor, seconds: float) -> dict[str, float]:
    """Metrics of one candidate in one mode.

    Parameters
    ----------
    rmsd
        ``float[C · S]``: RMSD of every pose (Å; ``inf`` for a non-finite pose).
    top1
        ``float[C]``: RMSD of each complex's top-1 pose (``nan`` without a confidence model).
    seconds
        Time spent sampling.

    Returns
    -------
    dict[str, float]
        ``poses``; ``below_2``, ``below_5`` (% of poses); ``median_rmsd`` (Å); ``top1_below_2``,
        ``top1_below_5`` (% of complexes, ``nan`` without confidences); ``seconds``.
    """
    rmsd, top1 = rmsd.double().cpu(), top1.double().cpu()
    ranked = not bool(top1.isnan().any())
    return {
        "poses": len(rmsd),
        "below_2": 100 * float((rmsd < 2).double().mean()),
        "below_5": 100 * float((rmsd < 5).double().mean()),
        "median_rmsd": median(rmsd),
        "top1_below_2": 100 * float((top1 < 2).double().mean()) if ranked else math.nan,
        "top1_below_5": 100 * float((top1 < 5).double().mean()) if ranked else math.nan,
        "seconds": seconds,
    }


class Chunk(NamedTuple):
    """One device batch: ``samples`` copies of a chunk of complexes, receptors encoded once.

    (A named tuple, not a dataclass: tests import this script without registering it in ``sys.modules``.)

    Attributes
    ----------
    batch
        The copies (graph ``c · S + s``), with crystal poses.
    score
        The score network with the batch's receptors encoded (:meth:`ScoreModel.for_receptors`).
    prior_center
        ``float[B, 3]``: centre of the translation prior (pocket mode), or ``None`` (protein centre).
    prior_sigma
        ``float[B]``: spread of the translation prior (pocket mode), or ``None`` (``σ_tr,max``).
    """

    batch: ComplexBatch
    score: ScoreFunction
    prior_center: torch.Tensor | None
    prior_sigma: torch.Tensor | None


@torch.no_grad()
def prepare_chunks(
    networks: DockingNetworks,
    cache: ComplexCache,
    mode: str,
    samples: int,
    complexes_per_batch: int,
    pocket_sigma: float,
) -> list[Chunk]:
    """The batches of one mode, shared by all candidates (pockets and receptor encodings do not depend on
    the temperatures); pocket mode's translation prior has spread ``pocket_sigma`` (Å)."""
    model = networks.score_model
    chunks = []
    for chunk in torch.arange(len(cache), device=cache.device).split(complexes_per_batch):
        pockets = None
        if mode == "pocket":
            graphs = chunk.repeat_interleave(samples)
            pockets = sample_training_pockets(cache, graphs, 1.0, 0.0, DEFAULT_POCKET_MARGIN)
        batch = batch_of(cache, chunk, samples, model.config, pockets)
        prior_center = prior_sigma = None
        if pockets is not None:
            prior_center, prior_sigma = pockets[:, :3], torch.full_like(pockets[:, 0], pocket_sigma)
        chunks.append(Chunk(batch, model.for_receptors(batch), prior_center, prior_sigma))
    return chunks


@torch.no_grad()
def dock(
    networks: DockingNetworks,
    chunks: Sequence[Chunk],
    temperatures: SamplingTemperatures,
    latent_source: LatentSource | None,
    samples: int,
    steps: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dock every chunk with one generator seeded by ``seed``.

    Returns
    -------
    tuple[torch.Tensor, torch.Tensor]
        ``float[C · S]`` RMSD of every pose (``inf`` where not finite) and ``float[C]`` RMSD of each
        complex's top-1 pose by confidence (``nan`` without a confidence model), on the CPU.
    """
    model = networks.score_model
    generator = torch.Generator(device=networks.device).manual_seed(seed)
    rmsds, top1s = [], []
    for chunk in chunks:
        batch = chunk.batch
        pos = sample_poses(
            chunk.score,
            batch,
            model.config.schedule,
            num_steps=steps,
            latent_source=latent_source,
            temperatures=temperatures,
            prior_center=chunk.prior_center,
            prior_sigma_tr=chunk.prior_sigma,
            generator=generator,
        )
        rmsd = pose_rmsd(pos, batch.crystal_pos, batch.atom_graph, batch.num_graphs).float()
        rmsd = torch.nan_to_num(rmsd, nan=math.inf)
        per_complex = rmsd.view(-1, samples)
        if networks.confidence is None:
            top1 = torch.full((len(per_complex),), math.nan, device=rmsd.device)
        else:
            logits = networks.confidence(batch.with_ligand_pos(pos)).float().view(-1, samples)
            top1 = per_complex.gather(1, logits.argmax(dim=1, keepdim=True))[:, 0]
        rmsds.append(rmsd.cpu())
        top1s.append(top1.cpu())
    return torch.cat(rmsds), torch.cat(top1s)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cell(value: float, digits: int) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def markdown_table(
    metrics: dict[str, dict[str, dict[str, float]]], scores: dict[str, float], chosen: str
) -> str:
    """One row per candidate: per mode ``< 2 Å``, ``< 5 Å`` (% of poses), median RMSD, top-1 ``< 2 Å`` (% of
    complexes), seconds; then the selection score. The chosen candidate is in bold."""
    header = ["candidate"]
    for mode in MODES:
        header += [
            f"{mode} <2 Å %",
            f"{mode} <5 Å %",
            f"{mode} median Å",
            f"{mode} top-1 <2 Å %",
            f"{mode} s",
        ]
    header.append("score")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for name, per_mode in metrics.items():
        cells = [f"**{name}**" if name == chosen else name]
        for mode in MODES:
            values = per_mode[mode]
            cells += [
                _cell(values["below_2"], 1),
                _cell(values["below_5"], 1),
                _cell(values["median_rmsd"], 2),
                _cell(values["top1_below_2"], 1),
                _cell(values["seconds"], 1),
            ]
        cells.append(_cell(scores[name], 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pocket_sigma_table(metrics: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table of pocket mode per translation prior spread (keys of ``metrics``, Å)."""
    lines = [
        "| prior spread Å | <2 Å % | <5 Å % | median Å | top-1 <2 Å % | top-1 <5 Å % | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sigma, per_mode in metrics.items():
        values = per_mode["pocket"]
        cells = [
            _cell(values["below_2"], 1),
            _cell(values["below_5"], 1),
            _cell(values["median_rmsd"], 2),
            _cell(values["top1_below_2"], 1),
            _cell(values["top1_below_5"], 1),
            _cell(values["seconds"], 1),
        ]
        lines.append(f"| {sigma} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def candidate_table(table: dict[str, SamplingTemperatures]) -> str:
    """The candidates' ``T / ψ / τ_d`` per component, as a Markdown table."""
    lines = ["| candidate | tr T / ψ / τ_d | rot T / ψ / τ_d | tor T / ψ / τ_d |", "|---|---|---|---|"]
    for name, temperatures in table.items():
        cells = []
        for component in COMPONENTS:
            value = getattr(temperatures, component)
            cells.append(f"{value.sampling:.3f} / {value.psi:.3f} / {value.sigma_data:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sampling_record(
    temperatures: SamplingTemperatures,
    candidate: str,
    score: float,
    cache: str,
    complexes: int,
    samples: int,
    steps: int,
    seed: int,
    command: str,
) -> dict[str, Any]:
    """The content of ``<checkpoint>/sampling.json``: the chosen temperatures and how they were chosen.

    Parameters
    ----------
    temperatures
        The winner.
    candidate
        Its name in :func:`candidates`.
    score
        Its :func:`selection_score`.
    cache
        Path of the validation cache it was tuned on.
    complexes
        Complexes of that cache docked.
    samples, steps, seed
        Sampling settings of the tuning.
    command
        The command line that produced it.

    Returns
    -------
    dict[str, Any]
        ``temperatures`` (``dataclasses.asdict``; read back with ``ComponentTemperature(**value)`` per
        component), ``candidate``, ``selection_score``, ``tuned_on`` (``cache``, ``complexes``),
        ``samples``, ``steps``, ``seed``, ``command``.
    """
    return {
        "temperatures": dataclasses.asdict(temperatures),
        "candidate": candidate,
        "selection_score": score,
        "tuned_on": {"cache": cache, "complexes": complexes},
        "samples": samples,
        "steps": steps,
        "seed": seed,
        "command": command,
    }


def _without_nan(value: Any) -> Any:
    """``value`` with every float ``nan`` replaced by ``None`` (strict JSON)."""
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _write_json(path: Path, record: dict[str, Any]) -> None:
    path.write_text(json.dumps(_without_nan(record), indent=2, allow_nan=False) + "\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", required=True, help="Checkpoint folder (e.g. checkpoints/disco_small)."
    )
    parser.add_argument("--cache", default="cache/val.cache.pt", help="Validation cache.")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda, cuda:N or cpu."
    )
    parser.add_argument("--samples", type=int, default=8, help="Poses per complex.")
    parser.add_argument("--steps", type=int, default=20, help="Reverse-diffusion steps.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of every candidate's generator.")
    parser.add_argument("--first", type=int, default=None, help="Only the first N complexes of --cache.")
    parser.add_argument("--complexes-per-batch", type=int, default=16, help="Complexes per device batch.")
    parser.add_argument(
        "--candidates",
        nargs="+",
        choices=list(candidates()),
        default=None,
        help="Candidates to compare (default all; kept in the order of the fixed list).",
    )
    parser.add_argument(
        "--pocket-sigma",
        type=float,
        default=DEFAULT_POCKET_SIGMA,
        help="Å, spread of pocket mode's translation prior (default that of discodock predict).",
    )
    parser.add_argument(
        "--pocket-sigmas",
        type=float,
        nargs="+",
        default=(),
        help="Also dock pocket mode with the winner at each of these spreads (Å) and report them.",
    )
    parser.add_argument("--out", default=None, help="Output folder (default runs/tuning/<checkpoint name>).")
    parser.add_argument(
        "--write-checkpoint", action="store_true", help="Write the winner to <checkpoint>/sampling.json."
    )
    args = parser.parse_args(argv)
    if args.samples < 1 or args.steps < 1 or args.complexes_per_batch < 1:
        parser.error("--samples, --steps and --complexes-per-batch must be ≥ 1")
    if not all(sigma > 0 for sigma in (args.pocket_sigma, *args.pocket_sigmas)):
        parser.error("--pocket-sigma and --pocket-sigmas must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the tuning; returns the record written to ``tuning.json`` (``nan`` kept)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join(["python", SCRIPT, *argv])
    networks = DockingNetworks.load(args.checkpoint, device=args.device)
    device, model = networks.device, networks.score_model.eval()
    latent_source = None
    if model.config.latent_tokens and networks.prior is not None:
        latent_source = prior_latents(networks.prior)
    tokens = "none" if latent_source is None else "from the prior"
    cache = ComplexCache.load(args.cache)
    if args.first is not None:
        cache = cache.subset(list(range(min(args.first, len(cache)))))
    cache = cache.to(device)
    table = {
        name: value
        for name, value in candidates().items()
        if args.candidates is None or name in args.candidates
    }
    print(
        f"{args.checkpoint}: {len(cache)} complexes of {args.cache}, {args.samples} samples, "
        f"{args.steps} steps, seed {args.seed}, tokens {tokens}, {device}",
        flush=True,
    )

    chunks = {
        mode: prepare_chunks(networks, cache, mode, args.samples, args.complexes_per_batch, args.pocket_sigma)
        for mode in MODES
    }
    warm_up = chunks[MODES[0]][:1]  # first calls (CUDA kernels, caches) out of the first candidate's time
    dock(networks, warm_up, SamplingTemperatures(), latent_source, args.samples, 1, args.seed)
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for name, temperatures in table.items():
        metrics[name] = {}
        for mode in MODES:
            _synchronize(device)
            start = time.perf_counter()
            rmsd, top1 = dock(
                networks, chunks[mode], temperatures, latent_source, args.samples, args.steps, args.seed
            )
            _synchronize(device)
            values = mode_metrics(rmsd, top1, time.perf_counter() - start)
            metrics[name][mode] = values
            print(
                f"{name} {mode}: < 2 Å {values['below_2']:.1f} %, < 5 Å {values['below_5']:.1f} %, "
                f"median {values['median_rmsd']:.2f} Å, top-1 < 2 Å {_cell(values['top1_below_2'], 1)} %, "
                f"{values['seconds']:.1f} s",
                flush=True,
            )
    scores = {name: selection_score(per_mode) for name, per_mode in metrics.items()}
    chosen = choose(scores)
    sigma_metrics = {}
    for sigma in args.pocket_sigmas:
        spread = [
            chunk._replace(prior_sigma=torch.full_like(chunk.prior_sigma, sigma))
            for chunk in chunks["pocket"]
        ]
        _synchronize(device)
        start = time.perf_counter()
        rmsd, top1 = dock(networks, spread, table[chosen], latent_source, args.samples, args.steps, args.seed)
        _synchronize(device)
        sigma_metrics[f"{sigma:g}"] = {"pocket": mode_metrics(rmsd, top1, time.perf_counter() - start)}

    out = Path(args.out) if args.out is not None else Path("runs") / "tuning" / Path(args.checkpoint).name
    out.mkdir(parents=True, exist_ok=True)
    summary = markdown_table(metrics, scores, chosen)
    print(summary)
    print(f"chosen: {chosen} (selection score {scores[chosen]:.2f})")
    sigma_table = pocket_sigma_table(sigma_metrics)
    if sigma_metrics:
        print(sigma_table)
    setup = (
        f"Checkpoint `{args.checkpoint}`, {len(cache)} complexes of `{args.cache}`, {args.samples} poses per "
        f"complex, {args.steps} steps, seed {args.seed}, tokens {tokens}, "
        f"device {device}. Shares of poses (plain RMSD), top-1 by confidence; score = mean over the modes of "
        "(share < 2 Å + share < 5 Å) / 2. Pocket mode: translation prior of spread "
        f"{args.pocket_sigma:g} Å around the centre."
    )
    markdown = [
        "# Sampling temperatures",
        "",
        setup,
        "",
        f"    {command}",
        "",
        summary,
        "",
        f"Chosen: **{chosen}** (selection score {scores[chosen]:.2f}).",
        "",
        "## Candidates",
        "",
        candidate_table(table),
        "",
    ]
    if sigma_metrics:
        markdown += [f"## Pocket prior spread (pocket mode, {chosen})", "", sigma_table, ""]
    (out / "tuning.md").write_text("\n".join(markdown))
    record = {
        "command": command,
        "args": vars(args),
        "device": str(device),
        "complexes": len(cache),
        "names": list(cache.names),
        "candidates": {name: dataclasses.asdict(value) for name, value in table.items()},
        "metrics": metrics,
        "selection_scores": scores,
        "chosen": chosen,
        "pocket_sigma_metrics": sigma_metrics,
    }
    _write_json(out / "tuning.json", record)
    written = [out / "tuning.json", out / "tuning.md"]
    if args.write_checkpoint:
        sampling = sampling_record(
            table[chosen],
            chosen,
            scores[chosen],
            args.cache,
            len(cache),
            args.samples,
            args.steps,
            args.seed,
            command,
        )
        _write_json(Path(args.checkpoint) / "sampling.json", sampling)
        written.append(Path(args.checkpoint) / "sampling.json")
    print("wrote " + ", ".join(str(path) for path in written))
    return record


if __name__ == "__main__":
    main()
