"""Dock a cache of training or validation complexes for the confidence model (``discodock dock-cache``).

Poses are sampled as at inference (:meth:`~discodock.inference.networks.DockingNetworks.sample`: tuned
temperatures, batched), ``S`` per complex in blind mode and ``S`` in pocket mode (receptor cropped to a
training pocket, :func:`~discodock.diffusion.noising.sample_training_pockets`, translation prior
``N(c, σ_p²)`` on its centre), and stored as :class:`~discodock.data.docked_poses.DockedPoses`.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from tqdm import tqdm

from discodock.data.cache import COUNT_COLUMNS, ComplexCache
from discodock.data.docked_poses import DockedPoses
from discodock.diffusion.noising import sample_training_pockets
from discodock.inference.networks import DEFAULT_POCKET_MARGIN, DockingNetworks, SamplingOptions


def dock_cache(
    networks: DockingNetworks,
    cache: ComplexCache,
    samples: int,
    options: SamplingOptions,
    *,
    pocket_jitter: float = 2.0,
    pocket_margin: float = DEFAULT_POCKET_MARGIN,
    complexes_per_call: int = 32,
    progress: bool = True,
) -> DockedPoses:
    """Dock every complex of ``cache`` ``samples`` times in blind and ``samples`` times in pocket mode.

    Parameters
    ----------
    networks
        The trained networks (score model, prior, confidence model).
    cache
        Complexes with crystal poses (the pocket centres lie near the crystal ligand).
    samples
        ``S``, poses per complex and mode.
    options
        Sampling options (steps, temperatures, pocket spread ``σ_p``, seed); ``options.samples`` is
        replaced by ``samples``.
    pocket_jitter, pocket_margin
        The training pockets (Å): centre within ``N(0, jitter²)`` of the crystal centroid, radius
        ``margin`` + the conformer's radius, as ``train.pocket_jitter`` and ``train.pocket_margin``.
    complexes_per_call
        Complexes per call of :meth:`DockingNetworks.sample` (one progress step).
    progress
        Show a progress bar.
    """
    if not cache.has_crystal_pose:
        raise ValueError("docking for the confidence model needs complexes with crystal poses")
    options = replace(options, samples=samples)
    generator = torch.Generator(device=cache.device).manual_seed(options.seed)
    pockets = sample_training_pockets(
        cache, torch.arange(len(cache), device=cache.device), 1.0, pocket_jitter, pocket_margin, generator
    ).cpu()
    poses, confidences = [], []
    chunks = torch.arange(len(cache)).split(complexes_per_call)
    for chunk in tqdm(chunks, desc="docking", unit="chunk", disable=not progress):
        part = cache.subset(chunk.tolist())
        crops = pockets[chunk]
        blind = networks.sample(part, torch.zeros(len(chunk), 3), options)
        pocket = networks.sample(
            part.cropped(crops[:, :3], crops[:, 3]),
            crops[:, :3],
            options,
            pocket=torch.ones(len(chunk), dtype=torch.bool),
        )
        for blind_poses, pocket_poses in zip(blind.per_complex(), pocket.per_complex(), strict=True):
            poses += [blind_poses.poses, pocket_poses.poses]
            confidences.append(torch.cat([blind_poses.confidences, pocket_poses.confidences]))
    return DockedPoses(
        list(cache.names),
        cache.counts[:, COUNT_COLUMNS.index("atoms")].cpu().clone(),
        samples,
        options.steps,
        torch.cat(poses),
        pockets.float(),
        torch.stack(confidences).float(),
    )
