"""Copy a network folder with some parameters zeroed or copied, to carry weights across a network change.

Session 4 changed the score model twice, and this script moved the checkpoints along:

1. The per-atom vector layer ``atom_displacement`` became a preconditioned displacement estimate with a
   loss term of its own; a fresh model initialises it to zero, and so did the warm starts of the
   retraining (``--zero atom_displacement.weight``).
2. Its graph mean, which feeds the translation head, moved to a layer of its own,
   ``translation_vectors``. Copying the parameters
   (``--copy atom_displacement.weight=translation_vectors.weight``, and the same for ``.bias`` and
   ``.output_mask``) keeps a network trained before the split exactly as it was; adding
   ``--zero atom_displacement.weight`` turns a network trained before step 1 into one whose
   translation head is unchanged and whose displacement estimate starts from zero.

Every ``*.pt`` network and ``*.json`` state of ``SOURCE`` is copied to ``DESTINATION`` (which may be
``SOURCE`` itself); in the networks named by ``--networks`` the copies are made first, then the zeros.

Usage::

    python benchmarks/edit_parameters.py checkpoints/nolatent_small checkpoints/nolatent_small \\
        --networks score_model score_model_ema \\
        --copy atom_displacement.weight=translation_vectors.weight \\
               atom_displacement.bias=translation_vectors.bias \\
               atom_displacement.output_mask=translation_vectors.output_mask \\
        --zero atom_displacement.weight
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
    parser.add_argument("--networks", nargs="+", required=True, help="file stems, e.g. score_model")
    parser.add_argument("--copy", nargs="*", default=[], metavar="FROM=TO")
    parser.add_argument("--zero", nargs="*", default=[], metavar="NAME")
    args = parser.parse_args()
    args.destination.mkdir(parents=True, exist_ok=True)
    copies = [pair.split("=", 1) for pair in args.copy]
    for file in sorted(args.source.glob("*.pt")) + sorted(args.source.glob("*.json")):
        target = args.destination / file.name
        if file.suffix == ".pt" and file.stem in args.networks:
            payload = load_payload(file)
            state = payload["state_dict"]
            for source_name, target_name in copies:
                state[target_name] = state[source_name].clone()
            for name in args.zero:
                state[name] = torch.zeros_like(state[name])
            save_atomic(payload, target)
            print(f"{target}: copied {args.copy or 'nothing'}, zeroed {args.zero or 'nothing'}")
        elif not target.exists() or not target.samefile(file):
            shutil.copyfile(file, target)


if __name__ == "__main__":
    main()
