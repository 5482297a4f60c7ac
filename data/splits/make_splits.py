"""Make the training and validation ID lists from the shared data collection.

Run from the repository root (needs RDKit; about a minute)::

    python data/splits/make_splits.py --data-root ../shared/data --out data/splits

Rules (issue "Train and ship the default model"):

* candidates: every complex folder of the training sources below that has a protein file and a ligand
  file with bond orders (see :mod:`discodock.data.layout`), and whose ligand RDKit can read;
* excluded: any PDB ID in ``splits/timesplit_test`` or in ``splits/posebusters_benchmark_set_ids.txt``, and
  any complex whose ligand has the same InChIKey **connectivity block** (first 14 characters: same
  skeleton, any stereo or protonation) as a time-split test ligand — stricter than the full key, since
  derived SDFs can differ from the test copies in protonation or stereo assignment;
* one complex per PDB ID (sources in the priority order below: PDBbind originals first);
* validation: a seeded 5% of PDB IDs.

Writes ``train.txt`` and ``val.txt`` (one ``<source>/<key>`` per line, usable as ``discodock prepare
--data-dir ../shared/data --split data/splits/train.txt``) and ``excluded.csv`` (id, reason).
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from discodock.data.layout import complex_files, find_complexes, read_split
from discodock.data.ligand import inchikey
from discodock.errors import InputError
from discodock.prepare import read_first_readable_ligand

TRAINING_SOURCES = (
    "casf2016_coreset_labdao",
    "diffdock_repo_examples",
    "gnina_repo_tests",
    "oddt_repo_tests",
    "tankbind_repo_examples",
    "posebusters_repo_tests",
    "casf2013_coreset_chemflow",
    "adgpu_set42",
    "dsdp_blind_dataset",
    "dsdp_dude_crystal",
)
TEST_SOURCE = "dsdp_pdbbind_timesplit_test"
VALIDATION_FRACTION = 0.05
SEED = 0


def _pdb_ids_by_folder(data_root: Path) -> dict[tuple[str, str], str]:
    """PDB ID of each ``(source, key)``; DUD-E targets have none and get ``dude:<target>`` instead."""
    with open(data_root / "manifest.csv") as handle:
        return {
            (row["source"], row["key"]): row["pdb_id"].lower() or "dude:" + row["key"].removeprefix("dude_")
            for row in csv.DictReader(handle)
        }


def _skeleton(ligand_paths: tuple[Path, ...]) -> str:
    return inchikey(read_first_readable_ligand(ligand_paths))[:14]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("data/splits"))
    args = parser.parse_args()
    root: Path = args.data_root

    test_ids = {i.lower() for i in read_split(root / "splits" / "timesplit_test")}
    posebusters_ids = {
        i[:4].lower() for i in read_split(root / "splits" / "posebusters_benchmark_set_ids.txt")
    }
    test_complexes, _ = find_complexes(root / TEST_SOURCE)
    test_skeletons = set()
    for files in test_complexes:
        try:
            test_skeletons.add(_skeleton(files.ligand_paths))
        except InputError:
            continue
    pdb_ids = _pdb_ids_by_folder(root)

    kept: dict[str, str] = {}  # pdb id -> "<source>/<key>"
    excluded: list[tuple[str, str]] = []
    for source in TRAINING_SOURCES:
        for folder in sorted(p for p in (root / source).iterdir() if p.is_dir()):
            name = f"{source}/{folder.name}"
            pdb_id = pdb_ids.get((source, folder.name), folder.name.lower())
            if pdb_id in test_ids:
                excluded.append((name, "PDB ID in the time-split test set"))
            elif pdb_id in posebusters_ids:
                excluded.append((name, "PDB ID in the PoseBusters benchmark set"))
            elif pdb_id in kept:
                excluded.append((name, f"PDB ID already taken from {kept[pdb_id]}"))
            else:
                try:
                    skeleton = _skeleton(complex_files(folder).ligand_paths)
                except InputError as error:
                    excluded.append((name, str(error)))
                    continue
                if skeleton in test_skeletons:
                    excluded.append((name, "ligand (InChIKey skeleton) in the time-split test set"))
                else:
                    kept[pdb_id] = name

    ordered = sorted(kept)
    random.Random(SEED).shuffle(ordered)
    n_val = round(VALIDATION_FRACTION * len(ordered))
    validation = sorted(kept[i] for i in ordered[:n_val])
    training = sorted(kept[i] for i in ordered[n_val:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.txt").write_text("\n".join(training) + "\n")
    (args.out / "val.txt").write_text("\n".join(validation) + "\n")
    with open(args.out / "excluded.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "reason"])
        writer.writerows(sorted(excluded))
    print(f"train {len(training)}, val {len(validation)}, excluded {len(excluded)}")


if __name__ == "__main__":
    main()
