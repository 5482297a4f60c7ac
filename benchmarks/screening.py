"""Virtual-screening throughput: one receptor, hundreds of real ligands, all docked in shared device batches.

The ligands are the crystal ligands of a data folder and split, passed as **SMILES** (no coordinates, as in a
screen), distinct by canonical SMILES, in split order. The receptor is featurized once (and cached by
:class:`~discodock.inference.docking.DockingModel`), every ligand gets its ETKDG conformer against it, and all
``ligands × samples`` graphs are docked in one :meth:`~discodock.inference.docking.DockingModel.run`. Ligands
whose conformer fails are counted and skipped.

On a GPU machine without RDKit, split the run in two (as ``discodock benchmark`` does): ``--export-inputs
FILE`` featurizes here and writes the ligands as a benchmark inputs file (one variant, ``blind``, or
``pocket`` with ``--autobox-ligand``; the featurization seconds in it), and ``python -m
discodock.benchmark.sample_inputs --inputs FILE`` docks them there in one batched run, printing the docking
seconds per ligand and the peak GPU memory.

Printed table: ligands docked, samples, steps, device, graphs per batch, featurization seconds, docking
seconds (wall, device synchronised), ligands per second (docking only, and end to end) and peak allocated
GPU memory.

Usage (from the repository root)::

    python benchmarks/screening.py --device cuda --ligands 500 --samples 10            # one GPU
    python benchmarks/screening.py --device cpu --ligands 5 --samples 4 --steps 5      # a handful on a CPU
    python benchmarks/screening.py --smiles-file ligands.smi --device cuda             # a SMILES list
    python benchmarks/screening.py --smiles-file ligands.smi --device cpu --export-inputs screen.pt
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from discodock import DockingModel
from discodock.benchmark.run import variant_inputs
from discodock.benchmark.sample_inputs import BenchmarkInputs, write_inputs
from discodock.data.layout import find_complexes, read_split
from discodock.data.ligand import canonical_smiles, read_ligand
from discodock.errors import InputError
from discodock.inference.docking import DockingJob, SamplingOptions, ligand_centroid
from discodock.prepare import read_first_readable_ligand

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECEPTOR = REPO / "data" / "examples" / "6moa" / "6moa_protein.pdb.gz"
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
DEFAULT_SPLIT = REPO / "data" / "splits" / "train.txt"


@dataclass(frozen=True)
class ScreeningThroughput:
    """Measured throughput of one screening run.

    Attributes
    ----------
    ligands
        Ligands docked.
    failed
        Ligands whose featurization failed (skipped).
    samples, steps
        Poses per ligand and reverse-diffusion steps.
    device
        Where the docking ran.
    graphs_per_batch
        Graphs per device batch (:meth:`~discodock.inference.docking.DockingModel.graphs_per_batch`).
    featurize_seconds
        Wall time of the featurization of all ligands (the receptor's once included).
    dock_seconds
        Wall time of the batched docking.
    peak_gpu_memory_bytes
        Peak allocated CUDA memory during docking; ``None`` off the GPU.
    """

    ligands: int
    failed: int
    samples: int
    steps: int
    device: str
    graphs_per_batch: int
    featurize_seconds: float
    dock_seconds: float
    peak_gpu_memory_bytes: int | None

    @property
    def docking_ligands_per_second(self) -> float:
        """``ligands / dock_seconds``."""
        return self.ligands / self.dock_seconds

    @property
    def end_to_end_ligands_per_second(self) -> float:
        """``ligands / (featurize_seconds + dock_seconds)``."""
        return self.ligands / (self.featurize_seconds + self.dock_seconds)


def screening_smiles(data_dir: str | Path, split_file: str | Path, count: int) -> list[tuple[str, str]]:
    """Up to ``count`` distinct ligands of a data folder and split, as ``(name, canonical SMILES)``.

    Complexes whose ligand files cannot be read are skipped.
    """
    usable, _ = find_complexes(data_dir, read_split(split_file))
    ligands: dict[str, str] = {}
    for files in usable:
        if len(ligands) == count:
            break
        try:
            smiles = canonical_smiles(read_first_readable_ligand(files.ligand_paths))
        except InputError:
            continue
        ligands.setdefault(smiles, files.name)
    return [(name, smiles) for smiles, name in ligands.items()]


def read_smiles_file(path: str | Path, count: int) -> list[tuple[str, str]]:
    """The first ``count`` ligands of a SMILES list: one ``SMILES [name]`` per line (``.smi`` layout).

    Blank lines and lines starting with ``#`` are skipped; a line without a name is named by its line number.
    """
    ligands: list[tuple[str, str]] = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        ligands.append((fields[1] if len(fields) > 1 else f"line{number}", fields[0]))
        if len(ligands) == count:
            break
    return ligands


def featurize(
    model: DockingModel,
    receptor: str | Path,
    ligands: Sequence[tuple[str, str]],
    options: SamplingOptions,
    pocket_center: Sequence[float] | None = None,
) -> tuple[list[DockingJob], float]:
    """The docking jobs of ``ligands`` (``(name, SMILES)``; failures skipped) and their wall seconds.

    Raises
    ------
    InputError
        If the receptor cannot be read or no ligand can be featurized.
    """
    start = time.perf_counter()
    jobs = []
    for name, smiles in ligands:
        try:
            ligand = read_ligand(smiles)
            jobs.append(
                model.prepare(receptor, ligand, name=name, pocket_center=pocket_center, seed=options.seed)
            )
        except InputError:
            continue
    if not jobs:
        raise InputError(receptor, "no ligand could be featurized")
    return jobs, time.perf_counter() - start


def export_inputs(
    jobs: Sequence[DockingJob], options: SamplingOptions, seconds: float, pocket: bool, path: str | Path
) -> BenchmarkInputs:
    """Write featurized ligands as a benchmark inputs file (variant ``pocket`` or ``blind``) and return it."""
    inputs = BenchmarkInputs(options, {"pocket" if pocket else "blind": variant_inputs(jobs, seconds)})
    write_inputs(inputs, Path(path))
    return inputs


def measure_throughput(
    model: DockingModel,
    receptor: str | Path,
    ligands: Sequence[tuple[str, str]],
    options: SamplingOptions,
    pocket_center: Sequence[float] | None = None,
) -> ScreeningThroughput:
    """Featurize and dock ``ligands`` (``(name, SMILES)``) into one receptor, timing both stages.

    Raises
    ------
    InputError
        If the receptor cannot be read or no ligand can be featurized.
    """
    device = model.device
    jobs, featurize_seconds = featurize(model, receptor, ligands, options, pocket_center)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    model.run(jobs, options)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dock_seconds = time.perf_counter() - start
    return ScreeningThroughput(
        ligands=len(jobs),
        failed=len(ligands) - len(jobs),
        samples=options.samples,
        steps=options.steps,
        device=torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        graphs_per_batch=model.graphs_per_batch(jobs, options),
        featurize_seconds=featurize_seconds,
        dock_seconds=dock_seconds,
        peak_gpu_memory_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
    )


def throughput_table(result: ScreeningThroughput) -> str:
    """Markdown table of one measurement."""
    memory = "–" if result.peak_gpu_memory_bytes is None else f"{result.peak_gpu_memory_bytes / 2**30:.2f}"
    header = (
        "| ligands | failed | samples | steps | device | graphs/batch | featurize s | dock s "
        "| ligands/s (docking) | ligands/s (end to end) | peak GPU GiB |"
    )
    row = (
        f"| {result.ligands} | {result.failed} | {result.samples} | {result.steps} | {result.device} "
        f"| {result.graphs_per_batch} | {result.featurize_seconds:.1f} | {result.dock_seconds:.1f} "
        f"| {result.docking_ligands_per_second:.2f} | {result.end_to_end_ligands_per_second:.2f} | {memory} |"
    )
    return "\n".join([header, "|---" * 11 + "|", row])


def main(argv: Sequence[str] | None = None) -> ScreeningThroughput | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receptor", default=str(DEFAULT_RECEPTOR), help="Receptor file.")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="Folder of the ligands' complexes.")
    parser.add_argument(
        "--split", default=str(DEFAULT_SPLIT), help="IDs of the complexes whose ligands to use."
    )
    parser.add_argument(
        "--smiles-file",
        help="Ligands as a SMILES list (SMILES [name] per line) instead of --data-dir/--split.",
    )
    parser.add_argument("--write-smiles", help="Also write the ligands used to this SMILES list, then dock.")
    parser.add_argument("--ligands", type=int, default=500, help="Number of distinct ligands.")
    parser.add_argument("--samples", type=int, default=10, help="Poses per ligand.")
    parser.add_argument("--steps", type=int, default=20, help="Reverse-diffusion steps.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of conformers and sampling.")
    parser.add_argument("--device", help="cuda or cpu [default: cuda if available].")
    parser.add_argument("--checkpoint", help="Checkpoint folder [default: the shipped one].")
    parser.add_argument("--batch-size", type=int, help="Graphs per device batch [default: automatic].")
    parser.add_argument("--autobox-ligand", help="Reference ligand file whose centroid is the pocket centre.")
    parser.add_argument(
        "--export-inputs", help="Only featurize, and write the ligands to this inputs file (see above)."
    )
    args = parser.parse_args(argv)
    if args.smiles_file is None:
        ligands = screening_smiles(args.data_dir, args.split, args.ligands)
        source = args.split
    else:
        ligands = read_smiles_file(args.smiles_file, args.ligands)
        source = args.smiles_file
    if args.write_smiles is not None:
        Path(args.write_smiles).write_text("".join(f"{smiles} {name}\n" for name, smiles in ligands))
    model = DockingModel.load(args.checkpoint, device=args.device)
    options = SamplingOptions(
        samples=args.samples, steps=args.steps, seed=args.seed, graphs_per_batch=args.batch_size
    )
    center = None if args.autobox_ligand is None else ligand_centroid(args.autobox_ligand)
    print(f"receptor {args.receptor}: {len(ligands)} distinct ligands from {source}")
    if args.export_inputs is not None:
        jobs, seconds = featurize(model, args.receptor, ligands, options, center)
        export_inputs(jobs, options, seconds, center is not None, args.export_inputs)
        print(f"{len(jobs)} ligands featurized in {seconds:.1f} s; inputs file {args.export_inputs}")
        return None
    result = measure_throughput(model, args.receptor, ligands, options, center)
    print(throughput_table(result))
    return result


if __name__ == "__main__":
    main()
