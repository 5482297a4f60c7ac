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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="discodock")
def main() -> None:
    """discodock: protein-ligand docking by diffusion with discrete latent tokens."""


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
def train(
    config_path: Path,
    resume: Path | None,
    init_from: Path | None,
    device: str | None,
    max_wall_minutes: float | None,
) -> None:
    """Train a stage (score or prior) of an experiment; runs under torchrun for several GPUs."""
    import dataclasses

    from discodock.training.config import load_experiment
    from discodock.training.trainer import train as run_training

    if not config_path.is_file():
        raise InputError(config_path, "config file not found")
    if resume is not None and not resume.is_file():
        raise InputError(resume, "checkpoint not found")
    if init_from is not None and not init_from.is_dir():
        raise InputError(init_from, "network folder not found")
    experiment = load_experiment(config_path)
    if max_wall_minutes is not None:
        budget = dataclasses.replace(experiment.train, max_wall_minutes=max_wall_minutes)
        experiment = dataclasses.replace(experiment, train=budget)
    summary = run_training(experiment, resume=resume, device=device, init_from=init_from)
    click.echo(
        f"stage {summary.stage}: {summary.steps} steps ({summary.epochs:.2f} epochs), stopped on "
        f"{summary.stop_reason} after {summary.wall_seconds:.0f} s; checkpoint {summary.checkpoint}"
    )
