"""How much do the sampled poses hold that the ranking misses? Read from a finished benchmark run.

For every method of a ``discodock benchmark`` output folder (``<out>/poses/<method>``: every pose of every
complex, in the method's rank order), the symmetry-corrected RMSD of each pose to the crystal ligand
(:func:`~discodock.benchmark.report.pose_rmsds`, as the report) and three choices of the top-1 pose:

* ``ranked``: the method's own first pose (confidence model, Vina score) — the report's top-1;
* ``consensus``: the pose with the most other poses of its complex within 2 Å (plain RMSD between poses,
  which share the atom order), ties to the better-ranked one — the medoid of the densest cluster, a
  ranking that needs no network;
* ``best``: the pose closest to the crystal ligand (the ceiling of any ranking).

Printed per method: the shares of complexes whose chosen pose is below 2 and 5 Å, for all complexes of the
run and for the receptors unseen in training (when the split folder has the unseen list). This is a
diagnostic of a finished test run: a ranking to ship must be chosen on the validation set.

Usage (from the repository root; ``OUT`` a benchmark output folder, e.g. of ``--import-samples``)::

    python benchmarks/ranking_ceiling.py --results OUT \
        --data-dir ../shared/data/dsdp_pdbbind_timesplit_test --split ../shared/data/splits/timesplit_test
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from discodock.benchmark.complexes import load_benchmark_set
from discodock.benchmark.report import pose_rmsds, read_run_poses
from discodock.inference.ranking import CONSENSUS_RMSD, neighbour_counts

CLUSTER_RADIUS = CONSENSUS_RMSD
"""Å; two poses within this plain RMSD of each other count as the same binding mode."""

CHOICES = ("ranked", "consensus", "best")
"""The top-1 choices compared."""


def consensus_index(positions: np.ndarray) -> int:
    """Index of the pose with the most others within :data:`CLUSTER_RADIUS` (``positions``: ``float[P, N,
    3]`` in rank order; ties go to the earlier, better-ranked pose)."""
    return int(neighbour_counts(torch.as_tensor(positions), CLUSTER_RADIUS).argmax())  # first of ties


def chosen_rmsds(rmsds: np.ndarray, positions: np.ndarray) -> dict[str, float]:
    """RMSD of the top-1 pose under each of :data:`CHOICES` (``rmsds``: ``float[P]`` in rank order)."""
    return {
        "ranked": float(rmsds[0]),
        "consensus": float(rmsds[consensus_index(positions)]),
        "best": float(rmsds.min()),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, type=Path, help="Output folder of discodock benchmark.")
    parser.add_argument("--data-dir", required=True, type=Path, help="The benchmark's --data-dir.")
    parser.add_argument("--split", required=True, type=Path, help="The benchmark's --split.")
    args = parser.parse_args(argv)
    unseen_file = args.split.parent / f"{args.split.name}_no_rec_overlap"
    unseen = set(unseen_file.read_text().split()) if unseen_file.is_file() else set()
    with tempfile.TemporaryDirectory() as receptors:
        complexes = {c.name: c for c in load_benchmark_set(args.data_dir, args.split, receptors).complexes}
    print(f"{len(complexes)} complexes, {len(unseen & set(complexes))} with unseen receptors")
    print(
        "| method | complexes | poses each | " + " | ".join(f"{c} < 2 Å | {c} < 5 Å" for c in CHOICES) + " |"
    )
    print("|---|---:|---:|" + "---:|" * (2 * len(CHOICES)))
    for folder in sorted(path for path in (args.results / "poses").iterdir() if path.is_dir()):
        run = read_run_poses(folder, complexes)
        rows = {
            name: chosen_rmsds(pose_rmsds(complexes[name], positions), positions)
            for name, positions in run.positions.items()
        }
        for subset, names in (
            ("all", list(run.attempted)),
            ("unseen", [n for n in run.attempted if n in unseen]),
        ):
            if not names:
                continue
            cells = []
            for choice in CHOICES:  # a failed complex (no poses) counts as a miss
                values = np.array([rows[name][choice] if name in rows else np.inf for name in names])
                cells += [f"{100 * (values < 2).mean():.1f}", f"{100 * (values < 5).mean():.1f}"]
            poses = max((len(p) for p in run.positions.values()), default=0)
            print(
                f"| {folder.name} ({subset}) | {len(names)} | {poses} | " + " | ".join(cells) + " |",
                flush=True,
            )


if __name__ == "__main__":
    main()
