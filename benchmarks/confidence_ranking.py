"""Does the confidence model rank the poses of one complex? Within-complex check on validation complexes.

For each of the first ``--complexes`` complexes of the cache, ``--samples`` training-style poses (the matched
pose noised at ``t ~ U(0, max_noise_time)``, :meth:`~discodock.training.trainer.ConfidenceStage.noised_poses`)
are scored by the checkpoint's confidence model. Printed: the mean over complexes of Spearman's
``ρ(logit, −RMSD)`` (1: perfect ranking, 0: none), and the medians over complexes of the RMSD of the
top-logit pose, of the best pose and of the median pose (plain RMSD to the crystal pose, in Å).

Usage (from the repository root, on a CPU in a minute or two)::

    python benchmarks/confidence_ranking.py --checkpoint checkpoints/disco_small --cache cache/val.cache.pt
"""

from __future__ import annotations

import argparse
import statistics

import torch

from discodock.data.cache import ComplexCache
from discodock.training.checkpoint import load_weights
from discodock.training.config import load_experiment
from discodock.training.trainer import ConfidenceStage, ProcessGroup, batch_of, pose_rmsd


def ranks(values: torch.Tensor) -> torch.Tensor:
    """Rank of every entry of each row (0 = smallest): ``float[C, S]``."""
    return values.argsort(dim=1).argsort(dim=1).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="checkpoints/disco_small", help="Folder with confidence.pt.")
    parser.add_argument("--config", default="configs/train_confidence_small.yaml")
    parser.add_argument("--cache", default="cache/val.cache.pt")
    parser.add_argument("--complexes", type=int, default=20)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    experiment = load_experiment(args.config)
    cache = ComplexCache.load(args.cache)
    stage = ConfidenceStage(experiment, ProcessGroup(0, 1, torch.device("cpu")), cache, cache)
    _, state_dicts = load_weights(args.checkpoint)
    stage.model.load_state_dict(state_dicts["confidence"])
    stage.model.eval()
    generator = torch.Generator().manual_seed(args.seed)
    logits, rmsds = [], []
    with torch.no_grad():
        for chunk in torch.arange(min(args.complexes, len(cache))).split(4):
            poses = stage.noised_poses(
                batch_of(cache, chunk, args.samples, experiment.model.score), generator
            )
            logits.append(stage.model(poses).view(-1, args.samples))
            rmsd = pose_rmsd(poses.ligand_pos, poses.crystal_pos, poses.atom_graph, poses.num_graphs)
            rmsds.append(rmsd.view(-1, args.samples))
    logit, rmsd = torch.cat(logits), torch.cat(rmsds)
    logit_ranks, closeness_ranks = ranks(logit), ranks(-rmsd)
    rho = [
        float(torch.corrcoef(torch.stack(pair))[0, 1])
        for pair in zip(logit_ranks, closeness_ranks, strict=True)
    ]
    picked = rmsd.gather(1, logit.argmax(dim=1, keepdim=True))[:, 0]
    best, median = rmsd.min(dim=1).values, rmsd.median(dim=1).values
    print("| complexes | poses | mean Spearman ρ(logit, −RMSD) | median RMSD, Å: top pick / best / median |")
    print("|---|---|---|---|")
    print(
        f"| {len(rho)} | {args.samples} | {statistics.mean(rho):+.2f} | "
        f"{float(picked.median()):.2f} / {float(best.median()):.2f} / {float(median.median()):.2f} |"
    )


if __name__ == "__main__":
    main()
