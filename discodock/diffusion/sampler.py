"""Reverse diffusion: docking poses from the prior by Euler–Maruyama steps (method.md §1.6, §3.8).

Every graph of a batch (many complexes, each in many copies) starts from the ``t = 1`` prior
(:func:`~discodock.geometry.pose.randomize_poses`: uniform torsions, uniform orientation, centroid
``~ N(c, σ_tr,max² I)`` around the protein centre or a given pocket centre). Its ``K`` latent tokens are
drawn once, before the first step, by a :data:`LatentSource`. On the grid
``t_i = 1 − i/N, i = 0..N−1`` with ``Δt_i = t_i − t_{i+1}`` (the last executed step jumps to 0),
each component ``c ∈ {tr, rot, tor}`` moves by

.. math::

    δ_c = g_c(t)^2 Δt\\, a_c(t)\\, ŝ_c + g_c(t) \\sqrt{Δt\\, b_c}\\, z, \\qquad z \\sim N(0, I),

applied through :func:`~discodock.geometry.pose.apply_pose_updates`. Without temperature ``a = b = 1``
(the plain reverse SDE). With the low-temperature rescaling of the reference code (active per
component when ``T ≠ 1``), with ``σ_d = σ_min^{1−τ_d} σ_max^{τ_d}``:

.. math::

    λ(t) = \\frac{σ_d + σ(t)}{σ_d + σ(t)/T}, \\qquad a = λ + Tψ/2, \\qquad b = 1 + ψ,

where ``T`` is ``temp_sampling`` (an *inverse* temperature: ``T > 1`` sharpens), ``ψ`` is ``temp_psi``
and ``τ_d`` is ``temp_sigma_data``. ``z = 0`` on the last executed step when final-step noise is off.

**Pocket prior.** A graph whose centroid is known to within ``σ_p < σ_tr,max`` (a given pocket centre)
starts from ``N(c, σ_p² I)`` and its translation step is scaled by the share ``f_i`` of the step's
variance drop that lies below ``σ_p²`` (drift by ``f_i``, noise variance by ``f_i``;
:func:`translation_step_shares`): it stays put while ``σ_tr(t) ≥ σ_p`` and then follows the plain
reverse SDE, while rotation and torsions take every step.

**Trust region.** Before a step, each score vector is shortened to at most :data:`SCORE_TRUST_LIMIT`
times its normaliser (``1/σ_tr`` for a translation, ``N_rot(σ_rot)`` for a rotation, ``sqrt(E[s²](σ_tor))``
for a torsion; the training targets of these normalised sizes are of order one), and a non-finite score
counts as zero. An undertrained network that extrapolates wildly for one pose then moves that pose by a
few σ instead of throwing it kilometres away, where the next step's features are meaningless (and the
pose updates' SVDs fail on non-finite coordinates, failing the whole batch).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from discodock.data.batch import ComplexBatch
from discodock.geometry.pose import apply_pose_updates, randomize_poses
from discodock.geometry.schedules import GeometricSchedule, NoiseSchedule
from discodock.geometry.so3 import igso3_score_norm
from discodock.geometry.torus import torus_score_second_moment
from discodock.model.latent_encoder import LatentEncoder
from discodock.model.latents import LatentAssignment, sample_tokens
from discodock.model.prior import AutoregressivePrior
from discodock.model.score_model import ScoreFunction

SCORE_TRUST_LIMIT = 10.0
"""Largest normalised score size a sampling step follows (module docstring, "Trust region")."""

LatentSource = Callable[[ComplexBatch, "torch.Generator | None"], LatentAssignment]
"""Draws the tokens of every graph of a batch, given the batch and a generator on its device."""


@dataclass(frozen=True)
class ComponentTemperature:
    """Low-temperature sampling parameters of one pose component (method.md §1.6).

    Attributes
    ----------
    sampling
        ``T`` (``temp_sampling``); 1 disables the rescaling (and ``psi`` with it, as in the reference).
    psi
        ``ψ`` (``temp_psi``), step of the Langevin corrector towards the tempered density.
    sigma_data
        ``τ_d`` (``temp_sigma_data``) in ``[0, 1]``: the data scale ``σ_d`` as a point on the component's
        geometric σ ladder.
    """

    sampling: float = 1.0
    psi: float = 0.0
    sigma_data: float = 0.5

    def step_scales(self, schedule: GeometricSchedule, t: float) -> tuple[float, float]:
        """Drift factor ``a(t)`` and noise-variance factor ``b`` of the Euler–Maruyama step."""
        if self.sampling == 1.0:
            return 1.0, 1.0
        sigma_data, sigma = (_float_at(schedule.sigma, u) for u in (self.sigma_data, t))
        rescaling = (sigma_data + sigma) / (sigma_data + sigma / self.sampling)
        return rescaling + self.sampling * self.psi / 2.0, 1.0 + self.psi


@dataclass(frozen=True)
class SamplingTemperatures:
    """Temperatures of translation, rotation and torsions; the defaults give the plain reverse SDE."""

    tr: ComponentTemperature = field(default_factory=ComponentTemperature)
    rot: ComponentTemperature = field(default_factory=ComponentTemperature)
    tor: ComponentTemperature = field(default_factory=ComponentTemperature)

    @classmethod
    def from_dict(cls, record: Mapping[str, Mapping[str, float]]) -> SamplingTemperatures:
        """The temperatures of ``dataclasses.asdict(temperatures)``: ``{"tr": {"sampling": ..., "psi": ...,
        "sigma_data": ...}, "rot": ..., "tor": ...}`` (a missing component is plain)."""
        return cls(**{name: ComponentTemperature(**values) for name, values in record.items()})


DIFFDOCK_S_TEMPERATURES = SamplingTemperatures(
    tr=ComponentTemperature(1.886, 0.0709, 0.362),
    rot=ComponentTemperature(5.660, 2.687, 0.744),
    tor=ComponentTemperature(2.889, 4.089, 0.0890),
)
"""Released DiffDock-S inference temperatures (method.md §5)."""

DISCO_DIFFDOCK_S_TEMPERATURES = SamplingTemperatures(
    tr=ComponentTemperature(1.547, 1.269, 0.846),
    rot=ComponentTemperature(4.005, 1.276, 0.453),
    tor=ComponentTemperature(3.650, 2.063, 0.329),
)
"""Released DisCo-DiffDock-S inference temperatures (method.md §5)."""


def time_grid(num_steps: int, actual_steps: int | None = None) -> list[tuple[float, float]]:
    """``(t_i, Δt_i)`` of the executed steps.

    ``t_i = 1 − i/N`` for ``i < k`` (``k = actual_steps``, default ``N``); ``Δt_i = t_i − t_{i+1}``, except
    that the last executed step takes ``Δt = t_{k−1}`` and so ends at ``t = 0``.
    """
    actual_steps = num_steps if actual_steps is None else actual_steps
    if not 1 <= actual_steps <= num_steps:
        raise ValueError(f"need 1 ≤ actual_steps ≤ num_steps, got {actual_steps} and {num_steps}")
    times = [1.0 - i / num_steps for i in range(num_steps + 1)]
    return [
        (times[i], times[i] if i == actual_steps - 1 else times[i] - times[i + 1])
        for i in range(actual_steps)
    ]


@torch.no_grad()
def sample_poses(
    score_function: ScoreFunction,
    batch: ComplexBatch,
    schedule: NoiseSchedule,
    *,
    num_steps: int = 20,
    actual_steps: int | None = None,
    latent_source: LatentSource | None = None,
    temperatures: SamplingTemperatures | None = None,
    final_step_noise: bool = False,
    prior_center: torch.Tensor | None = None,
    prior_sigma_tr: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Dock every graph of ``batch`` by reverse diffusion.

    Parameters
    ----------
    score_function
        The score network (in eval mode), called as ``score_function(batch, t [B], latents)``.
    batch
        Complexes × copies; the starting conformers are ``batch.conformer_pos``.
    schedule
        Noise schedules (those the network was trained with).
    num_steps
        ``N`` of the time grid (20).
    actual_steps
        Run only the first ``k`` steps, the last one jumping to ``t = 0`` (default all ``N``).
    latent_source
        Draws the tokens of every graph once (e.g. :func:`prior_latents`, :func:`oracle_latents`);
        ``None`` calls the network without tokens (a model with ``latent_tokens: 0``, or the null token).
    temperatures
        Low-temperature sampling; default none.
    final_step_noise
        Whether the last step adds noise (the released commands: no).
    prior_center
        ``float[B, 3]`` mean of the translation prior (a pocket centre); default the frame origin.
    prior_sigma_tr
        ``float[B]``: ``σ_p`` (Å), spread of each graph's translation prior; default (and at most)
        ``σ_tr,max``. A smaller one says the centroid is known to within ``σ_p`` (a pocket centre): that
        graph's translation stays put while ``σ_tr(t) > σ_p`` and follows the reverse SDE below
        (:func:`translation_step_shares`).
    generator
        ``torch.Generator`` on ``batch.device`` for the prior, the tokens and every step's noise.

    Returns
    -------
    torch.Tensor
        ``float[A, 3]`` final poses in the batch's frame (add ``batch.center[batch.atom_graph]`` for the
        input frame).
    """
    temperatures = temperatures or SamplingTemperatures()
    num_graphs, device, dtype = batch.num_graphs, batch.device, batch.conformer_pos.dtype
    sigma_tr_max = torch.full((num_graphs,), schedule.tr.sigma_max, device=device, dtype=dtype)
    if prior_sigma_tr is not None:
        sigma_tr_max = sigma_tr_max.clamp(max=prior_sigma_tr.to(device, dtype))
    pos = randomize_poses(
        batch.conformer_pos,
        batch.atom_graph,
        num_graphs,
        batch.torsions,
        sigma_tr_max=sigma_tr_max,
        center=prior_center,
        generator=generator,
    )
    latents = None if latent_source is None else latent_source(batch.with_ligand_pos(pos), generator)
    component_schedules = (schedule.tr, schedule.rot, schedule.tor)
    component_temperatures = (temperatures.tr, temperatures.rot, temperatures.tor)
    steps = time_grid(num_steps, actual_steps)
    tr_shares = translation_step_shares(schedule.tr, steps, sigma_tr_max)
    for index, (t, dt) in enumerate(steps):
        times = torch.full((num_graphs,), t, device=device, dtype=dtype)
        scores = score_function(batch.with_ligand_pos(pos), times, latents)
        add_noise = final_step_noise or index < len(steps) - 1
        deltas = []
        scores_by_component = (scores.tr, scores.rot, scores.tor)
        step_shares = (tr_shares[index][:, None], 1.0, 1.0)
        for component, temperature, score, normaliser, share in zip(
            component_schedules,
            component_temperatures,
            scores_by_component,
            _SCORE_NORMALISERS,
            step_shares,
            strict=True,
        ):
            score = _within_trust_region(score, normaliser(_float_at(component.sigma, t)))
            g = _float_at(component.diffusion_coefficient, t)
            drift_scale, noise_scale = temperature.step_scales(component, t)
            delta = share * g**2 * dt * drift_scale * score
            if add_noise:
                z = torch.randn(score.shape, generator=generator, device=device, dtype=dtype)
                delta = delta + g * (share * dt * noise_scale) ** 0.5 * z
            deltas.append(delta)
        pos = apply_pose_updates(pos, batch.atom_graph, num_graphs, *deltas, batch.torsions)
    return pos


def translation_step_shares(
    schedule: GeometricSchedule, steps: Sequence[tuple[float, float]], prior_sigma: torch.Tensor
) -> torch.Tensor:
    """``float[k, B]``: share ``f_i ∈ [0, 1]`` of step ``i``'s translation variance left to graph ``b``
    under a translation prior of spread ``σ_p,b`` (``prior_sigma``, ``float[B]``).

    Step ``i`` lowers the translation variance from ``σ(t_i)²`` to ``σ(t_i − Δt_i)²``. With the centroid
    known to within ``σ_p`` the process starts where ``σ(t) = σ_p``, so the step only has to remove
    ``min(σ(t_i), σ_p)² − min(σ(t_i − Δt_i), σ_p)²``; ``f_i`` is that over the full drop, and the step's
    drift and noise variance are scaled by it: ``f_i = 1`` at every step for ``σ_p ≥ σ_max`` (the plain
    sampler), ``0`` while ``σ(t) ≥ σ_p``, and ``Σ_i f_i (σ(t_i)² − σ(t_i − Δt_i)²) = σ_p² − σ_min²``.
    """
    shares = []
    for t, dt in steps:
        high, low = (_float_at(schedule.sigma, u) for u in (t, t - dt))
        kept = prior_sigma.clamp(max=high) ** 2 - prior_sigma.clamp(max=low) ** 2
        shares.append(kept / (high**2 - low**2))
    return torch.stack(shares)


def oracle_latents(encoder: LatentEncoder) -> LatentSource:
    """Tokens drawn from the encoder's categoricals on the crystal poses (method.md §3.3, §3.6).

    The encoder must be in eval mode; the draw is the Gumbel-max sample of ``softmax(ℓ_k)`` per token,
    which is what the oracle's straight-through Gumbel-softmax gives in the forward pass at any
    temperature.
    """

    def draw(batch: ComplexBatch, generator: torch.Generator | None) -> LatentAssignment:
        return sample_tokens(encoder(batch), batch, generator=generator)

    return draw


def prior_latents(prior: AutoregressivePrior, logit_multiplier: float | None = None) -> LatentSource:
    """Tokens sampled from the autoregressive prior (method.md §3.8 steps 2–3).

    The prior sees each graph's RDKit conformer (``conformer_pos``) with its centroid at the frame
    origin in a fresh uniformly random orientation (:func:`prior_input_batch`).

    Parameters
    ----------
    prior
        The trained prior, in eval mode.
    logit_multiplier
        Factor on its logits; default the prior config's ``exp(−1.5)``.
    """

    def draw(batch: ComplexBatch, generator: torch.Generator | None) -> LatentAssignment:
        prior_batch = prior_input_batch(batch, generator)
        return prior.sample(prior_batch, logit_multiplier=logit_multiplier, generator=generator)

    return draw


def prior_input_batch(batch: ComplexBatch, generator: torch.Generator | None = None) -> ComplexBatch:
    """``batch`` with ``ligand_pos`` the RDKit conformer at the origin in a uniformly random orientation.

    This is the input pose of the autoregressive prior in training and sampling (method.md §3.7):
    neither torsions nor position are perturbed.
    """
    pos = randomize_poses(
        batch.conformer_pos, batch.atom_graph, batch.num_graphs, None, sigma_tr_max=0.0, generator=generator
    )
    return batch.with_ligand_pos(pos)


_SCORE_NORMALISERS: tuple[Callable[[float], float], ...] = (
    lambda sigma: 1.0 / sigma,
    lambda sigma: float(igso3_score_norm(torch.tensor(sigma, dtype=torch.float64))),
    lambda sigma: float(torus_score_second_moment(torch.tensor(sigma, dtype=torch.float64)).sqrt()),
)
"""Typical score size of translation, rotation and torsion at noise ``σ`` (the loss normalisers)."""


def _within_trust_region(score: torch.Tensor, normaliser: float) -> torch.Tensor:
    """``score`` (``[B, 3]`` vectors or ``[T]`` scalars) with non-finite entries zeroed and each vector's
    length capped at :data:`SCORE_TRUST_LIMIT` ``· normaliser``."""
    score = torch.nan_to_num(score, nan=0.0, posinf=0.0, neginf=0.0)
    length = score.norm(dim=-1, keepdim=True) if score.ndim == 2 else score.abs()
    limit = SCORE_TRUST_LIMIT * normaliser
    return score * (limit / length.clamp(min=limit))


def _float_at(function: Callable[[torch.Tensor], torch.Tensor], t: float) -> float:
    """A schedule function (``σ(t)``, ``g(t)``) at a Python float time, evaluated in float64 on the CPU."""
    return float(function(torch.tensor(t, dtype=torch.float64)))
