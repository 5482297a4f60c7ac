"""Copy a network folder with some parameters set to zero, as the warm start of a changed network.

Used when a layer's role changes between training runs (session 4: the per-atom displacement layer of
the score model, ``atom_displacement.weight``, became a preconditioned displacement estimate trained by
its own loss term; a fresh model initialises it to zero, and so does the warm start of the retrained
checkpoints). Every ``*.pt`` network and ``*.json`` state of ``SOURCE`` is copied; in the networks named
``NETWORK`` (``score_model``, ``score_model_ema``), the parameters named ``--zero`` are zeroed.

Usage::

    python benchmarks/gpu/zero_parameters.py checkpoints/disco_small runs/warm_disco \\
        --networks score_model score_model_ema --zero atom_displacement.weight
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from discodock.training.checkpoint import load_payload, save_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--networks", nargs="+", required=True)
    parser.add_argument("--zero", nargs="+", required=True)
    args = parser.parse_args()
    args.destination.mkdir(parents=True, exist_ok=True)
    for file in sorted(args.source.glob("*.pt")) + sorted(args.source.glob("*.json")):
        target = args.destination / file.name
        if file.suffix == ".pt" and file.stem in args.networks:
            payload = load_payload(file)
            for name in args.zero:
                payload["state_dict"][name] = torch.zeros_like(payload["state_dict"][name])
            save_atomic(payload, target)
            print(f"{target}: zeroed {', '.join(args.zero)}")
        else:
            shutil.copyfile(file, target)


if __name__ == "__main__":
    main()
