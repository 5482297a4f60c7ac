"""Forward noising of clean training poses and the denoising score targets (method.md §1.4, §1.5).

For every graph ``b`` of a batch one time ``t_b ~ Beta(α, β)`` is shared by the three components. With
``σ_c = σ_c(t_b)`` of the noise schedule, the clean pose ``x0`` (``batch.matched_pos``: the
torsion-matched conformer aligned to the crystal, method.md §6.1) is perturbed by

* ``Δtr ~ N(0, σ_tr² I_3)``, target ``s_tr = −Δtr / σ_tr²``;
* ``Δr ~ IGSO(3)(ε = σ_rot)`` about the ligand centroid, target ``s_rot = IGSO(3) score of Δr``;
* ``Δθ_k ~ N(0, σ_tor²)`` per rotatable bond of the graph, target the wrapped-normal score ``s_σ(Δθ_k)``,

applied with :func:`~discodock.geometry.pose.apply_pose_updates` (rigid step, then sequential twists
Kabsch-aligned back, so the twists move neither centroid nor orientation). Everything is drawn from one
``torch.Generator`` on the batch's device, with no host synchronisation and no loop over graphs.

Pocket mode
-----------
The sampler takes a pocket centre as the mean of its translation prior (``prior_center``). The
perturbation needs no change for pocket mode: the networks only see relative positions, and the
training perturbation is centred on the true pose anyway (at ``t = 1`` it is ``x0 + N(0, σ_tr,max² I)``,
which a pocket prior matches better than the protein-centre one). What pocket mode changes is the
receptor: :func:`sample_training_pockets` draws, for a share of the training graphs, a centre near the
ligand and the radius inference would use (margin + the conformer's radius), and
:func:`~discodock.data.batch.collate` crops those receptors to it, as ``discodock predict
--pocket-center`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from discodock.data.batch import ComplexBatch
from discodock.data.cache import COUNT_COLUMNS, ComplexCache, ragged_rows
from discodock.geometry.pose import apply_pose_updates, centred, graph_mean, gyration_radius
from discodock.geometry.schedules import NoiseSchedule, sample_times
from discodock.geometry.so3 import igso3_sample, igso3_score, igso3_score_norm
from discodock.geometry.torus import torus_sample, torus_score, torus_score_second_moment


@dataclass(frozen=True)
class NoiseSample:
    """The perturbation drawn for a batch, its score targets and the per-component normalisers.

    Attributes
    ----------
    t
        ``float[B]`` diffusion time of each graph.
    tr_sigma, rot_sigma, tor_sigma
        ``float[B]`` noise scales ``σ_c(t)``.
    delta_tr, delta_rot
        ``float[B, 3]`` translation and rotation vector applied to each graph.
    delta_tor
        ``float[T]`` twist applied to each rotatable bond.
    tr_score
        ``float[B, 3]`` target ``−Δtr / σ_tr²``.
    rot_score
        ``float[B, 3]`` target ``s_ε(|Δr|) Δr/|Δr|`` (IGSO(3), ``ε = σ_rot``).
    tor_score
        ``float[T]`` target ``s_σ(Δθ)`` of the wrapped normal with ``σ = σ_tor`` of the bond's graph.
    rot_score_norm
        ``float[B]`` ``N_rot(σ_rot)``, the rotation normaliser.
    tor_score_second_moment
        ``float[T]`` ``E[s²](σ_tor)`` of each bond's graph, the torsion normaliser.
    atom_graph
        ``int64[A]`` graph of each atom.
    displacement_sigma
        ``float[B]`` ``ρ``, the typical size of :attr:`displacement` (Å;
        :meth:`~discodock.geometry.schedules.NoiseSchedule.displacement_sigma` of the noisy pose).
    displacement
        ``float[A, 3]`` centroid-relative displacement of every atom back to its clean position,
        ``(x0_i − x̄0) − (x_i − x̄)``: the rotation and torsion part of the perturbation, atom by atom.
    """

    t: torch.Tensor
    tr_sigma: torch.Tensor
    rot_sigma: torch.Tensor
    tor_sigma: torch.Tensor
    delta_tr: torch.Tensor
    delta_rot: torch.Tensor
    delta_tor: torch.Tensor
    tr_score: torch.Tensor
    rot_score: torch.Tensor
    tor_score: torch.Tensor
    rot_score_norm: torch.Tensor
    tor_score_second_moment: torch.Tensor
    atom_graph: torch.Tensor
    displacement_sigma: torch.Tensor
    displacement: torch.Tensor


def noise_batch(
    batch: ComplexBatch,
    schedule: NoiseSchedule,
    generator: torch.Generator | None = None,
    *,
    time_alpha: float = 2.0,
    time_beta: float = 1.0,
    t: torch.Tensor | None = None,
) -> tuple[ComplexBatch, NoiseSample]:
    """Perturb the clean pose of every graph at a random time and compute the score targets.

    Parameters
    ----------
    batch
        Training batch with ``matched_pos`` (the clean pose ``x0``, ``float[A, 3]``).
    schedule
        Noise schedules ``σ_tr, σ_rot, σ_tor`` of ``t``.
    generator
        ``torch.Generator`` on ``batch.device`` for ``t`` and all perturbations.
    time_alpha, time_beta
        ``t ~ Beta(α, β)`` (released configs: Beta(2, 1)).
    t
        ``float[B]`` times to use instead of random ones.

    Returns
    -------
    noisy_batch
        ``batch`` with ``ligand_pos`` set to the perturbed pose ``float[A, 3]``.
    noise
        The perturbation, targets and normalisers (:class:`NoiseSample`).
    """
    clean_pos = batch.matched_pos
    if clean_pos is None:
        raise ValueError("noising needs the clean (matched) pose; the batch has none")
    num_graphs, device, dtype = batch.num_graphs, batch.device, clean_pos.dtype
    if t is None:
        t = sample_times(num_graphs, time_alpha, time_beta, generator=generator, device=device, dtype=dtype)
    tr_sigma, rot_sigma, tor_sigma = schedule.tr.sigma(t), schedule.rot.sigma(t), schedule.tor.sigma(t)
    gaussian = torch.randn((num_graphs, 3), generator=generator, device=device, dtype=dtype)
    delta_tr = tr_sigma[:, None] * gaussian
    delta_rot = igso3_sample(rot_sigma, generator=generator)
    bond_sigma = tor_sigma[batch.torsions.graph]
    delta_tor = torus_sample(bond_sigma, generator=generator)
    noisy_pos = apply_pose_updates(
        clean_pos, batch.atom_graph, num_graphs, delta_tr, delta_rot, delta_tor, batch.torsions
    )
    noise = NoiseSample(
        t=t,
        tr_sigma=tr_sigma,
        rot_sigma=rot_sigma,
        tor_sigma=tor_sigma,
        delta_tr=delta_tr,
        delta_rot=delta_rot,
        delta_tor=delta_tor,
        tr_score=-delta_tr / tr_sigma[:, None] ** 2,
        rot_score=igso3_score(delta_rot, rot_sigma),
        tor_score=torus_score(delta_tor, bond_sigma),
        rot_score_norm=igso3_score_norm(rot_sigma),
        tor_score_second_moment=torus_score_second_moment(bond_sigma),
        atom_graph=batch.atom_graph,
        displacement_sigma=schedule.displacement_sigma(
            t, gyration_radius(noisy_pos, batch.atom_graph, num_graphs)
        ),
        displacement=centred(clean_pos - noisy_pos, batch.atom_graph, num_graphs),
    )
    return batch.with_ligand_pos(noisy_pos), noise


def sample_training_pockets(
    cache: ComplexCache,
    complex_index: torch.Tensor,
    fraction: float,
    jitter: float,
    margin: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pockets for a training batch: a share ``fraction`` of the complexes docked in pocket mode.

    A pocket complex ``b`` gets the centre ``c_b = x̄_b + N(0, jitter² I)`` (``x̄_b`` its crystal ligand's
    centroid) and the radius ``margin + max_a ‖y_a − ȳ‖`` (``y`` its RDKit conformer), the radius
    ``discodock predict`` crops with by default; the others get radius ``inf`` (whole receptor).

    Parameters
    ----------
    cache
        Training complexes (with crystal poses), on the batch's device.
    complex_index
        ``int64[B]``: complexes of the batch (one pose copy each).
    fraction
        Probability that a complex is docked in pocket mode.
    jitter
        Å; spread of the centre around the ligand.
    margin
        Å added to the conformer's radius.
    generator
        ``torch.Generator`` on ``cache.device``.

    Returns
    -------
    torch.Tensor
        ``float[B, 4]``: centre (frame) and radius of each graph, for :func:`collate`'s ``pockets``.
    """
    if "crystal_pos" not in cache.fields:
        raise ValueError("training pockets need the crystal poses")
    index = torch.as_tensor(complex_index, dtype=torch.long, device=cache.device)
    num_graphs = index.numel()
    counts = cache.counts[:, COUNT_COLUMNS.index("atoms")]
    rows, graph, _ = ragged_rows(cache.offsets("atoms"), counts, index)
    crystal = cache.fields["crystal_pos"][rows]
    conformer = cache.fields["conformer_pos"][rows]
    centroid = graph_mean(crystal, graph, num_graphs)
    spread = centred(conformer, graph, num_graphs).norm(dim=1)
    conformer_radius = spread.new_zeros(num_graphs).scatter_reduce_(0, graph, spread, "amax")
    offset = torch.randn(centroid.shape, generator=generator, device=centroid.device, dtype=centroid.dtype)
    in_pocket = torch.rand(num_graphs, generator=generator, device=centroid.device) < fraction
    radius = torch.where(in_pocket, margin + conformer_radius, torch.full_like(conformer_radius, torch.inf))
    return torch.cat([centroid + jitter * offset, radius[:, None]], dim=1)
