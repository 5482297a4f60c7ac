"""The ``discodock`` command line.

Every subcommand turns bad input into one line on standard error (``error: <file>: <problem>``) and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from discodock.errors import InputError


class _Group(click.Group):
    """Click group that reports :class:`InputError` as one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except InputError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)


# Options shared by the docking commands (predict, benchmark).
samples_option = click.option(
    "--samples", default=40, show_default=True, type=click.IntRange(min=1), help="Poses per complex."
)
steps_option = click.option(
    "--steps", default=20, show_default=True, type=click.IntRange(min=1), help="Reverse-diffusion steps."
)
device_option = click.option("--device", help="cuda, cuda:1 or cpu [default: cuda if available].")
temperatures_option = click.option(
    "--temperatures",
    type=click.Choice(["tuned", "none", "diffdock-s", "disco-diffdock-s"]),
    default="tuned",
    show_default=True,
    help="Low-temperature sampling: tuned (the checkpoint's sampling.json; plain without one), none (the "
    "plain reverse SDE), or a released preset.",
)
pocket_sigma_option = click.option(
    "--pocket-sigma",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,  # discodock.inference.networks.DEFAULT_POCKET_SIGMA (not imported here: it pulls in torch)
    show_default=True,
    metavar="S",
    help="Å; with a pocket centre, the ligand starts within about S of it and its translation is denoised "
    "from there (19 or more: the blind prior's spread).",
)
consensus_weight_option = click.option(
    "--consensus-weight",
    type=click.FloatRange(min=0),
    default=1.0,  # discodock.inference.ranking.DEFAULT_CONSENSUS_WEIGHT (importing it pulls in torch)
    show_default=True,
    metavar="W",
    help="Rank poses by confidence + W × how many other samples lie within 2 Å (both z-scored); 0: by "
    "confidence alone.",
)
batch_size_option = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Graphs (complex copies) per device batch [default: from free GPU memory; 64 on a CPU].",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="discodock")
def main() -> None:
    """discodock: protein-ligand docking by diffusion with discrete latent tokens."""


@main.command("dock-cache")
@click.option(
    "--cache",
    "cache_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Cache of `discodock prepare`.",
)
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Docked-poses file (.pt).")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    help="Checkpoint folder [default: the shipped checkpoints/disco_small].",
)
@click.option(
    "--samples",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Poses per complex in each mode (blind, pocket).",
)
@steps_option
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the pockets and the sampling.")
@click.option(
    "--shard",
    default="0/1",
    show_default=True,
    metavar="I/N",
    help="Dock only the I-th of N equal slices of the cache (one process per GPU).",
)
@click.option(
    "--pocket-jitter", default=2.0, show_default=True, type=float, help="Å; pocket centres around the ligand."
)
@click.option(
    "--pocket-margin",
    default=20.0,
    show_default=True,
    type=float,
    help="Å; pocket radius beyond the conformer's.",
)
@pocket_sigma_option
@device_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def dock_cache(
    cache_path: Path,
    out: Path,
    checkpoint: Path | None,
    samples: int,
    steps: int,
    seed: int,
    shard: str,
    pocket_jitter: float,
    pocket_margin: float,
    pocket_sigma: float,
    device: str | None,
    quiet: bool,
) -> None:
    """Dock every complex of a training or validation cache, blind and in a pocket, for the confidence model.

    The poses (train.docked_poses, train.val_docked_poses of a confidence run) are sampled as `predict`
    samples them, with the checkpoint's tuned temperatures; see discodock.inference.dock_cache.
    """
    from discodock.data.cache import ComplexCache
    from discodock.inference.dock_cache import dock_cache as dock
    from discodock.inference.networks import DockingNetworks, SamplingOptions  # no RDKit: runs on a GPU host

    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise click.BadParameter(f"expected I/N, got {shard!r}", param_hint="--shard") from None
    if not 0 <= index < count:
        raise click.BadParameter(f"need 0 ≤ I < N, got {shard}", param_hint="--shard")
    if not cache_path.is_file():
        raise InputError(cache_path, "cache file not found")
    start = time.perf_counter()
    networks = DockingNetworks.load(checkpoint, device=device)
    cache = ComplexCache.load(cache_path)
    if not cache.has_crystal_pose:
        raise InputError(
            cache_path, "the cache has no crystal poses (prepare it from complexes with ligands)"
        )
    bounds = [len(cache) * k // count for k in (index, index + 1)]
    cache = cache.subset(range(*bounds))
    options = SamplingOptions(steps=steps, seed=seed, pocket_sigma=pocket_sigma)
    docked = dock(
        networks,
        cache,
        samples,
        options,
        pocket_jitter=pocket_jitter,
        pocket_margin=pocket_margin,
        progress=not quiet,
    )
    docked.save(out)
    click.echo(
        f"docked {len(cache)} complexes × {2 * samples} poses in {time.perf_counter() - start:.0f} s; "
        f"wrote {out}"
    )


@main.command()
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder with one sub-folder per complex.",
)
@click.option(
    "--split", "split_file", type=click.Path(path_type=Path), help="File of complex IDs to prepare."
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Cache file to write.")
@click.option(
    "--seed", default=0, show_default=True, help="Seed of conformer generation and torsion fitting."
)
@click.option("--workers", type=int, help="Worker processes [default: all cores].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def prepare(
    data_dir: Path, split_file: Path | None, out: Path, seed: int, workers: int | None, quiet: bool
) -> None:
    """Featurize complexes (PDBBind or shared-data layout) into one cache file."""
    from discodock.prepare import prepare_folder, write_cache

    start = time.perf_counter()
    report = prepare_folder(data_dir, split_file, seed=seed, workers=workers, progress=not quiet)
    for name, reason in report.failures:
        click.echo(f"failed {name}: {reason}", err=True)
    if report.prepared:
        write_cache(report, out)
    size_mb = out.stat().st_size / 2**20 if report.prepared else 0.0
    click.echo(
        f"prepared {len(report.prepared)}/{report.total} in {time.perf_counter() - start:.0f} s"
        + (f"; cache {out} ({size_mb:.1f} MiB)" if report.prepared else "")
    )
    if not report.prepared:
        raise InputError(data_dir, "no complex could be prepared")


@main.command()
@click.option(
    "--config", "config_path", required=True, type=click.Path(path_type=Path), help="Experiment YAML."
)
@click.option("--resume", type=click.Path(path_type=Path), help="Checkpoint to continue from.")
@click.option(
    "--device", help="cuda, cuda:1 or cpu [default: cuda if available]. Under torchrun: one GPU a process."
)
@click.option(
    "--init-from",
    type=click.Path(path_type=Path),
    help="Network folder to warm-start from (e.g. checkpoints/disco_small) instead of --resume.",
)
@click.option("--max-wall-minutes", type=float, help="Override the config's time budget of this run.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config value, e.g. --set train.weight_decay=0.05 (repeatable).",
)
def train(
    config_path: Path,
    resume: Path | None,
    init_from: Path | None,
    device: str | None,
    max_wall_minutes: float | None,
    overrides: tuple[str, ...],
) -> None:
    """Train a stage (score, prior or confidence) of an experiment; runs under torchrun for several GPUs."""
    import dataclasses

    from discodock.training.config import load_experiment
    from discodock.training.trainer import train as run_training

    if not config_path.is_file():
        raise InputError(config_path, "config file not found")
    if resume is not None and not resume.is_file():
        raise InputError(resume, "checkpoint not found")
    if init_from is not None and not init_from.is_dir():
        raise InputError(init_from, "network folder not found")
    experiment = load_experiment(config_path, overrides)
    if max_wall_minutes is not None:
        budget = dataclasses.replace(experiment.train, max_wall_minutes=max_wall_minutes)
        experiment = dataclasses.replace(experiment, train=budget)
    summary = run_training(experiment, resume=resume, device=device, init_from=init_from)
    click.echo(
        f"stage {summary.stage}: {summary.steps} steps ({summary.epochs:.2f} epochs), stopped on "
        f"{summary.stop_reason} after {summary.wall_seconds:.0f} s; checkpoint {summary.checkpoint}"
    )


@main.command()
@click.option(
    "-r", "--protein", type=click.Path(path_type=Path), help="Receptor: PDB, PDBQT or mmCIF, optionally .gz."
)
@click.option("-l", "--ligand", help="Ligand: SDF, MOL2 or .smi file (every molecule), or a SMILES string.")
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(path_type=Path),
    help="Batch instead of -r/-l: CSV with columns complex_name,protein_path,ligand_description.",
)
@click.option(
    "-o",
    "--out",
    default="predictions",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Output folder.",
)
@click.option("--name", help="Complex name with -r/-l [default: <protein stem>_<ligand stem>].")
@samples_option
@steps_option
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Random seed; repeats a run on the same device with the same --batch-size.",
)
@device_option
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    help="Checkpoint folder [default: the shipped checkpoints/disco_small].",
)
@click.option(
    "--pocket-center",
    nargs=3,
    type=float,
    metavar="X Y Z",
    help="Pocket centre (Å, input frame): centre of the translation prior instead of the protein centre, "
    "and of the receptor crop.",
)
@click.option(
    "--autobox-ligand",
    type=click.Path(path_type=Path),
    help="Reference ligand file whose heavy-atom centroid is the pocket centre.",
)
@click.option(
    "--pocket-radius",
    type=click.FloatRange(min=0, min_open=True),
    metavar="R",
    help="Å; the receptor graph keeps the residues whose C-alpha lies within R of the pocket centre "
    "[default: 20 + the ligand's conformer radius].",
)
@click.option(
    "--latents",
    type=click.Choice(["prior", "null"]),
    default="prior",
    show_default=True,
    help="Latent tokens from the autoregressive prior, or none (unconditional denoiser).",
)
@click.option(
    "--logit-multiplier", type=float, help="Factor on the prior's logits [default: the checkpoint's]."
)
@temperatures_option
@pocket_sigma_option
@consensus_weight_option
@batch_size_option
@click.option("--hydrogens", is_flag=True, help="Add hydrogens with 3D coordinates to the written poses.")
@click.option("--complex-pdb", is_flag=True, help="Also write complex.pdb: the receptor and the rank-1 pose.")
@click.option("--override", is_flag=True, help="Dock again complexes that already have a rank1.sdf.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def predict(
    protein: Path | None,
    ligand: str | None,
    csv_file: Path | None,
    out: Path,
    name: str | None,
    samples: int,
    steps: int,
    seed: int,
    device: str | None,
    checkpoint: Path | None,
    pocket_center: tuple[float, float, float] | None,
    autobox_ligand: Path | None,
    pocket_radius: float | None,
    latents: str,
    logit_multiplier: float | None,
    temperatures: str,
    pocket_sigma: float,
    consensus_weight: float,
    batch_size: int | None,
    hydrogens: bool,
    complex_pdb: bool,
    override: bool,
    quiet: bool,
) -> None:
    """Dock ligands into receptors: -r P.pdb -l L.sdf|SMILES, or --csv FILE for a batch.

    Writes OUT/<name>/rank{k}_confidence{c}.sdf, rank1.sdf (and complex.pdb) per complex, and
    OUT/results.csv with one row per input. Finished complexes are skipped unless --override. Exits
    non-zero only on invalid arguments or when no complex is docked.
    """
    from discodock.inference.docking import (
        TEMPERATURE_PRESETS,
        DockingModel,
        SamplingOptions,
        ligand_centroid,
    )
    from discodock.inference.predict import PredictOutputs, read_items_csv, single_items
    from discodock.inference.predict import predict as predict_items

    if (csv_file is None) == (protein is None and ligand is None):
        raise click.UsageError("give either -r/--protein with -l/--ligand, or --csv")
    if csv_file is None and (protein is None or ligand is None):
        raise click.UsageError("-r/--protein and -l/--ligand go together")
    if csv_file is not None and name is not None:
        raise click.UsageError("--name applies to -r/-l only; a CSV names its complexes")
    if pocket_center and autobox_ligand is not None:
        raise click.UsageError("give --pocket-center or --autobox-ligand, not both")
    if pocket_radius is not None and not pocket_center and autobox_ligand is None:
        raise click.UsageError("--pocket-radius needs --pocket-center or --autobox-ligand")

    start = time.perf_counter()
    items = read_items_csv(csv_file) if csv_file is not None else single_items(protein, ligand, name)
    center = ligand_centroid(autobox_ligand) if autobox_ligand is not None else pocket_center or None
    model = DockingModel.load(checkpoint, device=device)
    options = SamplingOptions(
        samples=samples,
        steps=steps,
        seed=seed,
        latents=latents,
        logit_multiplier=logit_multiplier,
        temperatures=TEMPERATURE_PRESETS[temperatures],
        graphs_per_batch=batch_size,
        pocket_sigma=pocket_sigma,
        consensus_weight=consensus_weight,
    )
    outputs = PredictOutputs(out, hydrogens=hydrogens, complex_pdb=complex_pdb, override=override)
    summary = predict_items(
        model,
        items,
        options,
        outputs,
        pocket_center=center,
        pocket_radius=pocket_radius,
        progress=not quiet,
    )

    if csv_file is None and len(items) == 1 and summary.failures:
        failed_name, reason = summary.failures[0]
        error = summary.errors[failed_name]
        raise error if isinstance(error, InputError) else InputError(failed_name, reason)
    for failed_name, reason in summary.failures:
        click.echo(f"failed {failed_name}: {reason}", err=True)
    skipped = f", skipped {len(summary.skipped)} (already done)" if summary.skipped else ""
    click.echo(
        f"docked {len(summary.docked)}, failed {len(summary.failures)}{skipped} in "
        f"{time.perf_counter() - start:.0f} s; results in {out / 'results.csv'}"
    )
    if not summary.docked and not summary.skipped:
        sys.exit(1)


@main.command()
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder with one sub-folder per complex.",
)
@click.option(
    "--split",
    "split_file",
    required=True,
    type=click.Path(path_type=Path),
    help="File of complex IDs to dock.",
)
@click.option(
    "--unseen-split",
    "unseen_split_file",
    type=click.Path(path_type=Path),
    help="IDs whose receptors are unseen in training, scored separately "
    "[default: <split>_no_rec_overlap beside --split, if it exists].",
)
@samples_option
@steps_option
@click.option(
    "--out",
    default="benchmark_results",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Results folder.",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Checkpoint folder, one method each; repeat to compare several [default: the shipped one].",
)
@click.option("--no-models", is_flag=True, help="Run no network (only Vina or --add-method).")
@click.option(
    "--export-inputs",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Only featurize the set (and with --pocket its pocket variant) into FILE for python -m "
    "discodock.benchmark.sample_inputs on a machine without RDKit; docks nothing, writes no report.",
)
@click.option(
    "--import-samples",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Instead of running checkpoints, report the methods of the samples files (*.samples.pt) in DIR that "
    "python -m discodock.benchmark.sample_inputs wrote from an --export-inputs file.",
)
@click.option(
    "--add-method",
    "earlier_runs",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Pose folder RESULTS/poses/<method> of an earlier run, scored again with this run's methods.",
)
@click.option(
    "--pocket",
    is_flag=True,
    help="Also dock with each checkpoint given the pocket centre (the crystal ligand's heavy-atom centroid).",
)
@click.option(
    "--vina",
    type=click.Choice(["none", "pocket", "blind"]),
    default="none",
    show_default=True,
    help="AutoDock Vina baseline: box around the crystal ligand, or over the whole protein.",
)
@click.option(
    "--vina-subset",
    type=click.IntRange(min=1),
    metavar="N",
    help="Run Vina on a fixed subset of N complexes drawn with --seed [default: all]; with --add-method "
    "of such a Vina run, the subset it ran on.",
)
@click.option(
    "--vina-time-limit",
    type=click.FloatRange(min=0, min_open=True),
    metavar="S",
    help="Stop Vina on a complex after S seconds; it counts as failed [default: no limit].",
)
@click.option(
    "--vina-workers",
    type=click.IntRange(min=1),
    help="Parallel Vina processes, one CPU core each [default: all cores].",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seed of the conformers, the sampling and the Vina subset.",
)
@device_option
@batch_size_option
@temperatures_option
@pocket_sigma_option
@consensus_weight_option
@click.option(
    "--posebusters-subset",
    is_flag=True,
    help="Run the PoseBusters checks (seconds per pose on a CPU) only on the --vina-subset complexes.",
)
@click.option(
    "--no-posebusters", is_flag=True, help="Skip the PoseBusters checks (e.g. to score them later on a CPU)."
)
@click.option(
    "--posebusters-workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Processes that run the PoseBusters checks (one CPU core each).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def benchmark(
    data_dir: Path,
    split_file: Path,
    unseen_split_file: Path | None,
    samples: int,
    steps: int,
    out: Path,
    checkpoints: tuple[Path, ...],
    no_models: bool,
    export_inputs: Path | None,
    import_samples: Path | None,
    earlier_runs: tuple[Path, ...],
    pocket: bool,
    vina: str,
    vina_subset: int | None,
    vina_workers: int | None,
    vina_time_limit: float | None,
    seed: int,
    device: str | None,
    batch_size: int | None,
    temperatures: str,
    pocket_sigma: float,
    consensus_weight: float,
    posebusters_subset: bool,
    no_posebusters: bool,
    posebusters_workers: int,
    quiet: bool,
) -> None:
    """Dock a benchmark set (e.g. the PDBBind time split) and report accuracy, validity and speed.

    RMSDs are symmetry-corrected, heavy-atom, against the crystal ligand, without alignment. Writes
    OUT/results.json, OUT/report.md, OUT/complexes.csv, OUT/rmsd_cdf.png and the ranked poses
    OUT/poses/<method>/<complex>.sdf with the method's run.json (what --add-method reads back). Complexes
    without a usable ligand file are listed with the reason.

    On a GPU machine without RDKit: --export-inputs FILE here, then python -m
    discodock.benchmark.sample_inputs --inputs FILE --checkpoint DIR ... --out SAMPLES there, then
    --import-samples SAMPLES here (same --data-dir, --split, --pocket and sampling options).
    """
    from discodock.benchmark.run import (
        BenchmarkSettings,
        export_benchmark_inputs,
        missing_packages,
        run_benchmark,
    )
    from discodock.inference.docking import TEMPERATURE_PRESETS, SamplingOptions

    if no_models and checkpoints:
        raise click.UsageError("--no-models and --checkpoint exclude each other")
    if import_samples is not None and (checkpoints or no_models or export_inputs is not None):
        raise click.UsageError("--import-samples excludes --checkpoint, --no-models and --export-inputs")
    if export_inputs is not None and (checkpoints or no_models or earlier_runs or vina != "none"):
        raise click.UsageError(
            "--export-inputs only featurizes: it excludes --checkpoint, --no-models, --add-method and --vina"
        )
    if no_models and vina == "none" and not earlier_runs:
        raise click.UsageError("--no-models needs --vina pocket or blind, or --add-method")
    if out.exists() and not out.is_dir():
        raise click.UsageError(f"--out {out} exists and is not a folder")
    if (vina_workers is not None or vina_time_limit is not None) and vina == "none":
        raise click.UsageError("--vina-workers and --vina-time-limit need --vina pocket or blind")
    if vina_subset is not None and vina == "none" and not earlier_runs:
        raise click.UsageError("--vina-subset needs --vina pocket or blind, or --add-method of a Vina run")
    if posebusters_subset and vina_subset is None:
        raise click.UsageError("--posebusters-subset needs --vina-subset")
    options = SamplingOptions(
        samples=samples,
        steps=steps,
        seed=seed,
        temperatures=TEMPERATURE_PRESETS[temperatures],
        graphs_per_batch=batch_size,
        pocket_sigma=pocket_sigma,
        consensus_weight=consensus_weight,
    )
    start = time.perf_counter()
    if export_inputs is not None:
        inputs = export_benchmark_inputs(
            data_dir, split_file, export_inputs, options, pocket=pocket, progress=not quiet
        )
        counts = ", ".join(f"{len(v.cache)} {name}" for name, v in inputs.variants.items())
        click.echo(
            f"exported {counts} featurized complexes to {export_inputs} "
            f"({export_inputs.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - start:.0f} s"
        )
        return
    missing = missing_packages(vina)
    if missing:
        raise click.ClickException(
            f"missing {', '.join(missing)}; install the benchmark extra: pip install 'discodock[benchmark]'"
        )
    if unseen_split_file is None:
        beside = split_file.with_name(f"{split_file.name}_no_rec_overlap")
        unseen_split_file = beside if beside.is_file() else None

    settings = BenchmarkSettings(
        data_dir=data_dir,
        split_file=split_file,
        unseen_split_file=unseen_split_file,
        out_dir=out,
        checkpoints=() if no_models or import_samples is not None else checkpoints or (None,),
        options=options,
        pocket=pocket,
        vina=vina,
        vina_subset=vina_subset,
        vina_workers=vina_workers,
        vina_time_limit=vina_time_limit,
        device=device,
        earlier_runs=earlier_runs,
        posebusters=not no_posebusters,
        posebusters_subset_only=posebusters_subset,
        posebusters_workers=posebusters_workers,
        imported_samples=import_samples,
    )
    results = run_benchmark(settings, progress=not quiet)
    usable, unusable = results["benchmark"]["usable"], len(results["benchmark"]["unusable"])
    click.echo(f"{usable} complexes benchmarked, {unusable} unusable, in {time.perf_counter() - start:.0f} s")
    for name, method in results["methods"].items():
        scores = ", ".join(
            f"{set_name} {metrics['top1_below_2A']:.1f} (n={metrics['complexes']})"
            for set_name, metrics in method["metrics"].items()
        )
        click.echo(f"{name}: top-1 % RMSD < 2 Å: {scores}")
    click.echo(f"report in {out / 'report.md'}")
