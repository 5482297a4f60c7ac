"""Write a checkpoint folder of randomly initialised networks, for plumbing tests and smoke runs.

The folder has the layout :meth:`discodock.inference.docking.DockingModel.load` reads: one file per
network written by :func:`~discodock.training.checkpoint.save_network` (``score_model.pt``,
``score_model_ema.pt``, ``encoder.pt``, ``prior.pt``, ``confidence.pt``; no encoder or prior for a model
with ``latent_tokens: 0``). Poses docked with it are meaningless; the files and their semantics are not.

Usage (from the repository root)::

    python benchmarks/make_test_checkpoint.py --config configs/tiny.yaml --out runs/test_checkpoint
    discodock predict -r data/examples/6moa/6moa_protein.pdb.gz -l data/examples/6moa/6moa_ligand.sdf \
        --checkpoint runs/test_checkpoint --samples 4 --steps 5 --device cpu
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from discodock.model.confidence import ConfidenceModel
from discodock.model.config import load_config
from discodock.model.latent_encoder import LatentEncoder
from discodock.model.prior import AutoregressivePrior
from discodock.model.score_model import ScoreModel
from discodock.training.checkpoint import save_network

REPO = Path(__file__).resolve().parents[1]
OPTIONAL_NETWORKS = ("prior", "confidence")


def make_test_checkpoint(
    out: str | Path,
    config_path: str | Path = REPO / "configs" / "tiny.yaml",
    without: Sequence[str] = (),
    seed: int = 0,
) -> Path:
    """Write randomly initialised networks of a model config into the folder ``out``.

    Parameters
    ----------
    out
        The checkpoint folder (created if needed).
    config_path
        Model config YAML (e.g. ``configs/tiny.yaml``).
    without
        Optional networks to leave out: ``prior`` and/or ``confidence``.
    seed
        Seed of the initialisation.

    Returns
    -------
    Path
        ``out``.
    """
    unknown = set(without) - set(OPTIONAL_NETWORKS)
    if unknown:
        raise ValueError(
            f"only {', '.join(OPTIONAL_NETWORKS)} can be left out, not {', '.join(sorted(unknown))}"
        )
    torch.manual_seed(seed)
    config = load_config(config_path)
    score_model = ScoreModel(config.score)
    networks: dict[str, nn.Module] = {"score_model": score_model, "score_model_ema": score_model}
    if config.score.latent_tokens > 0:
        networks["encoder"] = LatentEncoder(config.encoder, config.score.latent_tokens)
        networks["prior"] = AutoregressivePrior(config.prior, config.score.latent_tokens)
    networks["confidence"] = ConfidenceModel(config.confidence)
    experiment = {"model": dataclasses.asdict(config), "train": {}}
    out = Path(out)
    for name, network in networks.items():
        if name not in without:
            save_network(out / f"{name}.pt", experiment, name, network)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"), help="Model config YAML.")
    parser.add_argument("--out", required=True, help="Checkpoint folder to write.")
    parser.add_argument(
        "--without", nargs="*", default=[], choices=OPTIONAL_NETWORKS, help="Networks to omit."
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the initialisation.")
    args = parser.parse_args()
    folder = make_test_checkpoint(args.out, args.config, args.without, args.seed)
    print(f"wrote {', '.join(sorted(p.name for p in folder.glob('*.pt')))} to {folder}")


if __name__ == "__main__":
    main()
