"""How well do ranking rules pick the docked poses of validation complexes? The table behind the default
consensus weight (:data:`discodock.inference.ranking.DEFAULT_CONSENSUS_WEIGHT`).

Reads poses the shipped networks docked for a cache (``discodock dock-cache``: ``S`` blind and ``S``
pocket poses per complex, with the logits of the networks' own confidence model) and ranks each complex's
poses of each mode by ``z(confidence) + w · z(neighbours within r)`` for every weight ``w`` and neighbour
radius ``r`` given (``w = 0``: the confidence alone). Printed per rule: % of rankings (complex × mode)
whose first pose lies within 2 Å and within 5 Å of the crystal pose (plain RMSD), and the median RMSD of
the first pose; and, for scale, the random pick and the best pose (also per mode: on the training cache,
how well the networks dock the complexes they were trained on).

Usage (CPU, seconds; the 40-sample pool of session 8 came from ``discodock dock-cache --cache
cache/val.cache.pt --samples 40 -o docked/val40.pt`` on a GPU)::

    python benchmarks/rank_docked_poses.py --docked docked/val40.pt --cache cache/val.cache.pt
"""

from __future__ import annotations

import argparse

import torch

from discodock.data.cache import COUNT_COLUMNS, ComplexCache, ragged_rows
from discodock.data.docked_poses import MODES, DockedPoses
from discodock.inference.ranking import neighbour_counts, rank_scores
from discodock.training.trainer import SUCCESS_RMSD, pose_rmsd


def first_pose_rates(scores: torch.Tensor, rmsd: torch.Tensor) -> tuple[float, float, float]:
    """% of rows whose highest-scored pose is within 2 Å and 5 Å, and that pose's median RMSD."""
    first = rmsd.gather(1, scores.argmax(dim=1, keepdim=True)).squeeze(1)
    return (
        100.0 * float((first < SUCCESS_RMSD).float().mean()),
        100.0 * float((first < 5.0).float().mean()),
        float(first.median()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docked", nargs="+", default=["docked/val40.pt"], help="Docked-poses file(s).")
    parser.add_argument("--cache", default="cache/val.cache.pt", help="The cache that was docked.")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--radii", type=float, nargs="+", default=[1.0, 2.0, 3.0], help="Å")
    args = parser.parse_args()

    cache = ComplexCache.load(args.cache)
    docked = DockedPoses.for_cache(args.docked, cache)
    per_complex, samples = docked.poses_per_complex, docked.samples
    graphs = torch.arange(len(cache)).repeat_interleave(per_complex)
    sample = torch.arange(per_complex).repeat(len(cache))
    atoms = cache.counts[:, COUNT_COLUMNS.index("atoms")]
    crystal_rows, atom_graph, _ = ragged_rows(cache.offsets("atoms"), atoms, graphs)
    poses = docked.poses[docked.pose_rows(graphs, sample)]
    rmsd = pose_rmsd(poses, cache.fields["crystal_pos"][crystal_rows], atom_graph, len(graphs))
    rmsd = rmsd.view(-1, samples)  # one row per complex and mode
    graph_poses = poses.split(atoms[graphs].tolist())
    rows = [torch.stack(graph_poses[i : i + samples]) for i in range(0, len(graph_poses), samples)]
    confidences = docked.confidences.view(-1, samples).double()
    print(
        f"{len(cache)} complexes × 2 modes, {samples} poses each. Random pick: "
        f"{100 * float((rmsd < SUCCESS_RMSD).float().mean()):.1f} % within 2 Å; best pose: "
        f"{100 * float((rmsd < SUCCESS_RMSD).any(1).float().mean()):.1f} % within 2 Å, "
        f"{100 * float((rmsd < 5).any(1).float().mean()):.1f} % within 5 Å."
    )
    for offset, mode in enumerate(MODES):
        part = rmsd[offset::2]
        print(
            f"{mode}: {100 * float((part < SUCCESS_RMSD).float().mean()):.1f} % of poses within 2 Å, "
            f"{100 * float((part < 5).float().mean()):.1f} % within 5 Å; best of {samples} within 2 Å for "
            f"{100 * float((part < SUCCESS_RMSD).any(1).float().mean()):.1f} % of complexes."
        )
    print()
    print("| neighbour radius | weight w | top-1 < 2 Å | top-1 < 5 Å | median top-1 RMSD |")
    print("|---|---|---|---|---|")
    for radius in args.radii:
        counts = torch.stack([neighbour_counts(row.double(), radius) for row in rows])
        for weight in args.weights:
            if weight == 0 and radius != args.radii[0]:
                continue
            below2, below5, median = first_pose_rates(rank_scores(confidences, counts, weight), rmsd)
            label = "–" if weight == 0 else f"{radius:g} Å"
            print(f"| {label} | {weight:g} | {below2:.1f} % | {below5:.1f} % | {median:.2f} Å |")


if __name__ == "__main__":
    main()
