"""Small CPU probes of the score network, quoted in ``benchmarks/results/training_log.md``.

Eight probes on the validation cache (``discodock prepare ... --split data/splits/val.txt``), each printing
one line per report:

* ``overfit``: the no-latent score model trained on the first few complexes (receptors cropped to 8 Å +
  the ligand's radius around its centroid, batch = one pose per complex, every t); every 40 steps the
  translation / rotation / torsion / displacement losses at t = 0.2, 0.5, 0.8 on fixed noise, in eval mode,
  and their means over the last 40 training steps (train mode, random t).
  Does the network fit all three components of a handful of complexes?
* ``rotation``: one complex, 16 poses per step, the full noise at one fixed t, one loss term only
  (``--component rot``, or ``tor`` for the torsions); the training loss every 20 steps. Can the heads learn
  a rotation (a torsion) at all?
* ``fits``: the displacement fits of the score model fed the *true* displacements of noised poses (8
  complexes × 8 draws per t): the rotation and torsion losses of ``ω/(2σ_rot²)`` and ``θ/σ_tor²``
  alone, with no network. How exact are the small-noise score formulas at each t?
* ``sampling``: dock every validation complex twice (20 steps, unconditional tokens) with a checkpoint;
  per chunk of 16 complexes, whether all poses are finite and the largest coordinate (Å). Does sampling
  diverge?
* ``generalisation``: the denoising losses of a checkpoint's EMA score network (eval mode; with
  latents, oracle tokens of its encoder) on the validation complexes and on as many training complexes,
  at t = 0.2, 0.5, 0.8 with the same seeded noise (4 poses per complex). Does the network overfit its
  1,122 training complexes?
* ``tokens``: a DisCo checkpoint docks every validation complex in pocket mode (receptor cropped around
  the crystal ligand's centroid, translation prior centred there; 4 poses, 20 steps, same seeds) with
  tokens from its encoder on the crystal complex (the oracle), from its prior, and with null tokens;
  per source the mean RMSD (plain, no symmetry correction) and the shares of poses below 2 and 5 Å.
  What do the tokens buy, and does the prior deliver it? A no-latent checkpoint docks with no tokens
  only; with ``--cache cache/train.cache.pt --first 59`` the probe docks training complexes: does sampling
  find the poses that the network has memorised?
* ``validation``: the score stage's validation losses (``trainer.validation_loss_sums``: the fixed noise
  of ``train.seed``, 4 poses per complex, EMA network in eval mode, oracle tokens) of one or more network
  folders, on the CPU. The CPU's random stream differs from CUDA's, so these are other
  noise draws than those of the GPU training log. Which of two runs validates better?
* ``cost``: seconds per call, on one thread, of the parts of sampling 8 copies of the first complex with a
  checkpoint: the receptor encoding, one score step, the confidence model and the prior's token draw.

Usage (from the repository root)::

    python benchmarks/cpu_probes.py overfit --complexes 4 --steps 200
    python benchmarks/cpu_probes.py rotation --steps 60 --t 0.5
    python benchmarks/cpu_probes.py rotation --steps 120 --t 0.5 --component tor
    python benchmarks/cpu_probes.py validation --networks checkpoints/disco_small runs/small_reg/networks
    python benchmarks/cpu_probes.py cost --checkpoint checkpoints/disco_small
    python benchmarks/cpu_probes.py fits
    python benchmarks/cpu_probes.py sampling --checkpoint checkpoints/nolatent_small
    python benchmarks/cpu_probes.py generalisation --checkpoint checkpoints/disco_small
    python benchmarks/cpu_probes.py tokens --checkpoint checkpoints/disco_small
    python benchmarks/cpu_probes.py tokens --checkpoint checkpoints/nolatent_small \
        --cache cache/train.cache.pt --first 59
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from discodock.data.cache import ComplexCache
from discodock.diffusion.loss import LOSS_TERMS, LossWeights, score_matching_loss
from discodock.diffusion.noising import noise_batch, sample_training_pockets
from discodock.diffusion.sampler import (
    LatentSource,
    oracle_latents,
    prior_input_batch,
    prior_latents,
    sample_poses,
)
from discodock.inference.networks import DEFAULT_POCKET_MARGIN, DockingNetworks
from discodock.model.config import ModelConfig, load_config
from discodock.model.latent_encoder import LatentEncoder
from discodock.model.score_model import ScoreModel, ScoreOutput, bond_twists, rigid_rotation
from discodock.training.checkpoint import load_network, load_training_state, load_weights
from discodock.training.config import load_experiment
from discodock.training.trainer import batch_of, pose_rmsd, process_seed, validation_loss_sums

POCKET_MARGIN = 8.0
"""Å added to the ligand's radius for the probes' receptor crops (small graphs, fast on a CPU)."""


def probe_model(config_path: str) -> ScoreModel:
    """A fresh no-latent score model without dropout (seed 0)."""
    torch.manual_seed(0)
    config = load_config(config_path).score
    return ScoreModel(dataclasses.replace(config, latent_tokens=0, dropout=0.0))


def cropped_batch(cache: ComplexCache, complexes: torch.Tensor, copies: int, model: ScoreModel):
    """``copies`` poses of each complex, receptors cropped around the crystal ligand."""
    graphs = complexes.repeat_interleave(copies)
    pockets = sample_training_pockets(cache, graphs, 1.0, 0.0, POCKET_MARGIN)
    return batch_of(cache, complexes, copies, model.config, pockets)


def overfit(cache: ComplexCache, model: ScoreModel, steps: int, complexes: int) -> None:
    index = torch.arange(complexes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)

    def report(step: int) -> None:
        model.eval()
        losses = []
        with torch.no_grad():
            for t in (0.2, 0.5, 0.8):
                batch = cropped_batch(cache, index, 2, model)
                times = torch.full((batch.num_graphs,), t)
                noisy, noise = noise_batch(
                    batch, model.config.schedule, torch.Generator().manual_seed(1), t=times
                )
                loss = score_matching_loss(model(noisy, noise.t), noise)
                losses.append(f"t={t}: " + " / ".join(f"{loss[name].item():.3f}" for name in LOSS_TERMS[1:]))
        model.train()
        print(f"step {step}: {' / '.join(LOSS_TERMS[1:])}  " + "   ".join(losses), flush=True)

    report(0)
    window = torch.zeros(len(LOSS_TERMS) - 1)
    for step in range(1, steps + 1):
        batch = cropped_batch(cache, index, 1, model)
        noisy, noise = noise_batch(batch, model.config.schedule, generator)
        losses = score_matching_loss(model(noisy, noise.t), noise)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        window += torch.stack([losses[name].detach() for name in LOSS_TERMS[1:]])
        if step % 40 == 0:
            means = " / ".join(f"{value:.3f}" for value in window / 40)
            print(f"steps {step - 39}-{step}: mean training losses {means}")
            window.zero_()
            report(step)


def rotation(cache: ComplexCache, model: ScoreModel, steps: int, t: float, component: str = "rot") -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    one_term = LossWeights(**{name: float(name == component) for name in ("tr", "rot", "tor", "disp")})
    batch = cropped_batch(cache, torch.tensor([0]), 16, model)
    times = torch.full((batch.num_graphs,), t)
    for step in range(1, steps + 1):
        noisy, noise = noise_batch(batch, model.config.schedule, generator, t=times)
        loss = score_matching_loss(model(noisy, noise.t), noise, one_term)[component]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 20 == 0:
            print(f"step {step}: {component} loss {loss.item():.3f}", flush=True)


def fits(cache: ComplexCache, model: ScoreModel) -> None:
    schedule = model.config.schedule
    for t in (0.0, 0.2, 0.4, 0.6, 0.8):
        batch = cropped_batch(cache, torch.arange(8), 8, model)
        times = torch.full((batch.num_graphs,), t)
        noisy, noise = noise_batch(batch, schedule, torch.Generator().manual_seed(0), t=times)
        rot_sigma, tor_sigma = schedule.rot.sigma(times), schedule.tor.sigma(times)[noisy.torsions.graph]
        prediction = ScoreOutput(
            tr=noise.tr_score,
            rot=rigid_rotation(noisy, noise.displacement) / (2 * rot_sigma[:, None] ** 2),
            tor=bond_twists(noisy, noise.displacement) / tor_sigma**2,
            displacement=noise.displacement,
        )
        loss = score_matching_loss(prediction, noise)
        print(f"t={t}: rotation loss {loss['rot'].item():.3f}, torsion loss {loss['tor'].item():.3f}")


def sampling(cache: ComplexCache, checkpoint: str) -> None:
    model = DockingNetworks.load(checkpoint, device="cpu").score_model
    generator = torch.Generator().manual_seed(0)
    for chunk in torch.arange(len(cache)).split(16):
        batch = batch_of(cache, chunk, 2, model.config)
        pos = sample_poses(model.for_receptors(batch), batch, model.config.schedule, generator=generator)
        print(
            f"complexes {int(chunk[0])}-{int(chunk[-1])}: finite {bool(torch.isfinite(pos).all())}, "
            f"largest coordinate {pos.abs().max().item():.1f} Å",
            flush=True,
        )


def load_encoder(checkpoint: str, num_tokens: int) -> LatentEncoder:
    """The latent encoder of a DisCo checkpoint folder, in eval mode."""
    config, _, state_dict = load_network(Path(checkpoint) / "encoder.pt")
    encoder = LatentEncoder(ModelConfig.from_dict(config["model"]).encoder, num_tokens)
    encoder.load_state_dict(state_dict)
    return encoder.eval()


def generalisation(validation: ComplexCache, training: ComplexCache, checkpoint: str) -> None:
    model = DockingNetworks.load(checkpoint, device="cpu").score_model.eval()
    latent_source = None
    if model.config.latent_tokens:
        latent_source = oracle_latents(load_encoder(checkpoint, model.config.latent_tokens))
    subsets = {"validation": validation, "training": training.subset(list(range(len(validation))))}
    for name, cache in subsets.items():
        cells = []
        for t in (0.2, 0.5, 0.8):
            sums, graphs = torch.zeros(len(LOSS_TERMS) - 1), 0
            generator = torch.Generator().manual_seed(0)
            for chunk in torch.arange(len(cache)).split(16):
                batch = batch_of(cache, chunk, 4, model.config)
                times = torch.full((batch.num_graphs,), t)
                with torch.no_grad():
                    noisy, noise = noise_batch(batch, model.config.schedule, generator, t=times)
                    latents = None if latent_source is None else latent_source(batch, generator)
                    losses = score_matching_loss(model(noisy, noise.t, latents), noise)
                sums += batch.num_graphs * torch.stack([losses[key] for key in LOSS_TERMS[1:]])
                graphs += batch.num_graphs
            cells.append(f"t={t}: " + " / ".join(f"{value:.2f}" for value in sums / graphs))
        print(
            f"{name} ({len(cache)} complexes) {' / '.join(LOSS_TERMS[1:])}  " + "   ".join(cells), flush=True
        )


def tokens(cache: ComplexCache, checkpoint: str) -> None:
    networks = DockingNetworks.load(checkpoint, device="cpu")
    model, prior = networks.score_model.eval(), networks.prior
    sources: dict[str, LatentSource | None] = {"null": None}
    if model.config.latent_tokens and prior is not None:
        sources = {
            "oracle": oracle_latents(load_encoder(checkpoint, model.config.latent_tokens)),
            "prior": prior_latents(prior.eval()),
            "null": None,
        }
    for name, source in sources.items():
        generator = torch.Generator().manual_seed(0)
        rmsds = []
        for chunk in torch.arange(len(cache)).split(16):
            graphs = chunk.repeat_interleave(4)
            pockets = sample_training_pockets(cache, graphs, 1.0, 0.0, DEFAULT_POCKET_MARGIN)
            batch = batch_of(cache, chunk, 4, model.config, pockets)
            with torch.no_grad():
                pos = sample_poses(
                    model.for_receptors(batch),
                    batch,
                    model.config.schedule,
                    latent_source=source,
                    prior_center=pockets[:, :3],
                    generator=generator,
                )
            rmsds.append(pose_rmsd(pos, batch.crystal_pos, batch.atom_graph, batch.num_graphs))
        rmsd = torch.cat(rmsds)
        print(
            f"{name} tokens: {len(rmsd)} poses, mean RMSD {rmsd.mean():.2f} Å, median {rmsd.median():.2f} Å, "
            f"< 2 Å {100 * (rmsd < 2).double().mean():.1f} %, < 5 Å {100 * (rmsd < 5).double().mean():.1f} %",
            flush=True,
        )


def validation(cache: ComplexCache, folders: Sequence[str], experiment_path: str) -> None:
    torch.set_num_threads(1)
    experiment = load_experiment(experiment_path)
    settings, score_config = experiment.train, experiment.model.score
    chunks = torch.arange(min(settings.validation.complexes, len(cache))).split(64)
    for folder in folders:
        _, state_dicts = load_weights(folder)
        network = ScoreModel(score_config)
        network.load_state_dict(state_dicts["score_model_ema"])
        latent_source = None
        if score_config.latent_tokens:
            encoder = LatentEncoder(experiment.model.encoder, score_config.latent_tokens)
            encoder.load_state_dict(state_dicts["encoder"])
            latent_source = oracle_latents(encoder.eval())
        sums, complexes = validation_loss_sums(
            network.eval(),
            latent_source,
            cache,
            chunks,
            settings,
            score_config,
            process_seed(settings.seed, 0, 3, 0),  # as the training run's validation on one process
        )
        steps = load_training_state(folder)["steps"]
        terms = " / ".join(f"{value:.3f}" for value in (sums / complexes).tolist())
        print(f"{folder} (step {steps}): {' / '.join(LOSS_TERMS)}  {terms}", flush=True)


def cost(cache: ComplexCache, checkpoint: str) -> None:
    torch.set_num_threads(1)
    networks = DockingNetworks.load(checkpoint, device="cpu")
    model = networks.score_model
    batch = batch_of(cache, torch.tensor([0]), 8, model.config)
    t = torch.full((batch.num_graphs,), 0.5)

    def seconds(call: Callable[[], object], repeats: int = 3) -> float:
        call()
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        return (time.perf_counter() - start) / repeats

    residues, atoms = (int(n) for n in cache.counts[0, :2])
    print(f"{cache.names[0]}: {residues} residues, {atoms} ligand atoms, 8 copies, 1 thread")
    with torch.no_grad():
        receptor = model.encode_receptor(batch)
        parts: dict[str, Callable[[], object]] = {
            "receptor encoding (once per run)": lambda: model.encode_receptor(batch),
            "score step (receptor given)": lambda: model(batch, t, None, receptor=receptor),
        }
        if networks.confidence is not None:
            parts["confidence model (once)"] = lambda: networks.confidence(batch)
        if networks.prior is not None:
            prior_batch = prior_input_batch(batch)
            parts["prior token draw (once)"] = lambda: networks.prior.sample(prior_batch)
        for name, call in parts.items():
            print(f"{name}: {seconds(call):.2f} s", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "probe",
        choices=("overfit", "rotation", "fits", "sampling", "generalisation", "tokens", "validation", "cost"),
    )
    parser.add_argument("--cache", default="cache/val.cache.pt", help="Validation cache.")
    parser.add_argument(
        "--train-cache", default="cache/train.cache.pt", help="Training cache (generalisation)."
    )
    parser.add_argument("--config", default="configs/small.yaml", help="Model config (overfit, rotation).")
    parser.add_argument(
        "--checkpoint",
        default="checkpoints/disco_small",
        help="Checkpoint folder (cost, sampling, generalisation, tokens).",
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--complexes", type=int, default=4, help="Complexes (overfit).")
    parser.add_argument("--t", type=float, default=0.5, help="Diffusion time (rotation).")
    parser.add_argument(
        "--component", choices=("rot", "tor"), default="rot", help="Loss term the rotation probe fits."
    )
    parser.add_argument(
        "--networks", nargs="+", default=["checkpoints/disco_small"], help="Network folders (validation)."
    )
    parser.add_argument(
        "--experiment", default="configs/train_small.yaml", help="Experiment of the networks (validation)."
    )
    parser.add_argument(
        "--first", type=int, default=None, help="Only the first N complexes of --cache (tokens)."
    )
    args = parser.parse_args(argv)
    cache = ComplexCache.load(args.cache)
    if args.first is not None:
        cache = cache.subset(list(range(min(args.first, len(cache)))))
    if args.probe == "cost":
        cost(cache, args.checkpoint)
    elif args.probe == "generalisation":
        generalisation(cache, ComplexCache.load(args.train_cache), args.checkpoint)
    elif args.probe == "tokens":
        tokens(cache, args.checkpoint)
    elif args.probe == "validation":
        validation(cache, args.networks, args.experiment)
    elif args.probe == "sampling":
        sampling(cache, args.checkpoint)
    elif args.probe == "fits":
        fits(cache, probe_model(args.config))
    elif args.probe == "overfit":
        overfit(
            cache.subset(list(range(args.complexes))), probe_model(args.config), args.steps, args.complexes
        )
    else:
        rotation(cache, probe_model(args.config), args.steps, args.t, args.component)


if __name__ == "__main__":
    main()
