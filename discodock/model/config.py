"""Hyperparameters of the networks, and reading them from YAML.

:class:`ModelConfig` bundles the three networks of DisCo-DiffDock (method.md §2–3): the score model
(:class:`ScoreModelConfig`), the latent encoder (:class:`EncoderConfig`) and the autoregressive prior
(:class:`PriorConfig`), plus the confidence model that ranks sampled poses (:class:`ConfidenceConfig`).
Defaults are the released DisCo-DiffDock-S values (method.md §5).

YAML files map onto these dataclasses key by key, sections onto nested dataclasses::

    score:
      ns: 24
      latent_tokens: 2
      schedule:
        tr: {sigma_min: 0.1, sigma_max: 19.0}
    encoder:
      nv: 4

Omitted keys keep their defaults; unknown keys are errors. :func:`dataclass_from_dict` is generic, so
an experiment config (e.g. a dataclass with ``model: ModelConfig`` and ``train: TrainConfig`` fields)
loads the same way with :func:`load_config`. ``dataclasses.asdict`` is the inverse.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from discodock.errors import InputError
from discodock.geometry.schedules import NoiseSchedule

ConfigT = TypeVar("ConfigT")


@dataclass(frozen=True)
class ScoreModelConfig:
    """The denoiser: a DiffDock-S score network conditioned on pointer latents (method.md §2, §3.4).

    Attributes
    ----------
    ns, nv
        Scalar and vector multiplicities of the node irreps (DiffDock-S: 24, 6).
    num_conv_layers
        Ligand tensor-product convolution layers (DiffDock-S: 5).
    receptor_layers
        Layers of the pose-independent receptor encoder (3).
    sh_lmax
        Degree of the edge spherical harmonics; only 1 (the fast l ≤ 1 tensor product) is supported.
    ligand_radius
        Å; radius graph of ligand atoms, and the neighbourhood of a rotatable bond in the torsion head.
    receptor_radius, receptor_max_neighbors
        Å and count; C-alpha graph parameters, used by :func:`discodock.data.batch.collate`.
    receptor_distance_max
        Å; range of the receptor edge distance smearing (30 Å, not the 15 Å graph cutoff).
    cross_cutoff_sigmas, cross_cutoff_offset, cross_max_distance
        The ligand–residue cutoff of a complex is ``min(sigmas·σ_tr(t) + offset, max_distance)`` Å
        (3σ_tr + 20, capped at 80); ``cross_max_distance`` is also the range of the cross distance smearing
        and of the distance smearing of the residue → centroid edges.
    cross_max_neighbors
        Each ligand atom receives messages from at most this many nearest residues within the cutoff (24).
    center_distance_max
        Å; range of the distance smearing of the translation/rotation head.
    distance_embed_dim
        Gaussians per distance smearing.
    time_embed_dim, time_embedding_scale
        Sinusoidal embedding of ``t · scale`` (32 dims of ``1000 t``).
    dropout
        Dropout probability in every MLP.
    latent_tokens
        ``K``, pointer tokens per complex; 0 gives plain DiffDock-S (no latent channels at all).
    latent_droprate
        Probability that a complex's tokens are replaced by the null token in training (method.md §3.5).
    schedule
        Noise schedules σ_tr, σ_rot, σ_tor of ``t``.
    """

    ns: int = 24
    nv: int = 6
    num_conv_layers: int = 5
    receptor_layers: int = 3
    sh_lmax: int = 1
    ligand_radius: float = 5.0
    receptor_radius: float = 15.0
    receptor_max_neighbors: int = 24
    receptor_distance_max: float = 30.0
    cross_cutoff_sigmas: float = 3.0
    cross_cutoff_offset: float = 20.0
    cross_max_distance: float = 80.0
    cross_max_neighbors: int = 24
    center_distance_max: float = 30.0
    distance_embed_dim: int = 32
    time_embed_dim: int = 32
    time_embedding_scale: float = 1000.0
    dropout: float = 0.1
    latent_tokens: int = 2
    latent_droprate: float = 0.1
    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)

    def __post_init__(self) -> None:
        _require_positive(self, "ns", "nv", "num_conv_layers", "receptor_layers", "distance_embed_dim")
        _require_positive(self, "ligand_radius", "receptor_distance_max", "cross_max_distance")
        _require_positive(self, "cross_max_neighbors")
        if self.sh_lmax != 1:
            raise ValueError(f"sh_lmax: only 1 is supported (fast l ≤ 1 tensor product), got {self.sh_lmax}")
        if self.time_embed_dim <= 0 or self.time_embed_dim % 2:
            raise ValueError(f"time_embed_dim must be a positive even number, got {self.time_embed_dim}")
        if self.latent_tokens < 0:
            raise ValueError(f"latent_tokens must be ≥ 0, got {self.latent_tokens}")
        _require_probability(self, "dropout", "latent_droprate")


@dataclass(frozen=True)
class EncoderConfig:
    """The latent encoder: a score-model-like network on the crystal pose without time (method.md §3.2).

    Attributes
    ----------
    ns, nv, num_conv_layers
        Trunk sizes (24, 4, 3).
    ligand_radius, receptor_distance_max, distance_embed_dim
        As in :class:`ScoreModelConfig`.
    cross_cutoff
        Å; fixed ligand–residue cutoff, also the range of the cross distance smearing (30).
    cross_max_neighbors
        Residues linked to each ligand atom, the nearest within the cutoff (24).
    dropout
        Dropout probability in the trunk's MLPs.
    head_hidden_dim, head_dropout
        Width and dropout of the ligand and receptor logit MLPs (128, 0).
    training_temperature, oracle_temperature
        Gumbel-softmax temperature in joint training (1.0) and when the encoder's tokens are used as an
        oracle or as prior targets (0.01); the forward sample is the same hard draw for both (§3.3).
    """

    ns: int = 24
    nv: int = 4
    num_conv_layers: int = 3
    ligand_radius: float = 5.0
    receptor_distance_max: float = 30.0
    cross_cutoff: float = 30.0
    cross_max_neighbors: int = 24
    distance_embed_dim: int = 32
    dropout: float = 0.1
    head_hidden_dim: int = 128
    head_dropout: float = 0.0
    training_temperature: float = 1.0
    oracle_temperature: float = 0.01

    def __post_init__(self) -> None:
        _require_positive(self, "ns", "nv", "num_conv_layers", "distance_embed_dim", "head_hidden_dim")
        _require_positive(
            self, "ligand_radius", "receptor_distance_max", "cross_cutoff", "cross_max_neighbors"
        )
        _require_positive(self, "training_temperature", "oracle_temperature")
        _require_probability(self, "dropout", "head_dropout")


@dataclass(frozen=True)
class PriorConfig:
    """The autoregressive prior over the tokens: a time-free trunk with token channels (method.md §3.7).

    Attributes
    ----------
    ns, nv, num_conv_layers
        Trunk sizes (24, 4, 3, as the latent encoder).
    ligand_radius, receptor_distance_max, distance_embed_dim
        As in :class:`ScoreModelConfig`.
    cross_cutoff
        Å; fixed ligand–residue cutoff, also the range of the cross distance smearing. The prior's
        ligand sits at the protein centre, so 80 Å (the score model's cap) lets it see the whole protein.
    cross_max_neighbors
        Residues linked to each ligand atom, the nearest within the cutoff (24).
    dropout
        Dropout probability in the trunk's MLPs.
    head_hidden_dim, head_dropout
        Width and dropout of the ligand and receptor logit MLPs (128, 0).
    log_logit_multiplier
        Sampling multiplies the logits by ``exp(log_logit_multiplier)`` (−1.5: logits × 0.223, i.e. a
        softmax temperature of 4.48, §3.8).
    """

    ns: int = 24
    nv: int = 4
    num_conv_layers: int = 3
    ligand_radius: float = 5.0
    receptor_distance_max: float = 30.0
    cross_cutoff: float = 80.0
    cross_max_neighbors: int = 24
    distance_embed_dim: int = 32
    dropout: float = 0.1
    head_hidden_dim: int = 128
    head_dropout: float = 0.0
    log_logit_multiplier: float = -1.5

    def __post_init__(self) -> None:
        _require_positive(self, "ns", "nv", "num_conv_layers", "distance_embed_dim", "head_hidden_dim")
        _require_positive(
            self, "ligand_radius", "receptor_distance_max", "cross_cutoff", "cross_max_neighbors"
        )
        _require_probability(self, "dropout", "head_dropout")

    @property
    def logit_multiplier(self) -> float:
        """``exp(log_logit_multiplier)``."""
        return math.exp(self.log_logit_multiplier)


@dataclass(frozen=True)
class ConfidenceConfig:
    """The confidence model: a time-free trunk on a final pose and a pooled logit head (method.md §2.7).

    The network attributes follow DiffDock's confidence model where our coarse-grained trunk allows it
    (24/6/5, dropout 0.1, head width ``ns`` with batch norm, no head dropout); the last three attributes
    say how its training poses are made (:class:`~discodock.training.trainer.ConfidenceStage`).

    Attributes
    ----------
    ns, nv, num_conv_layers
        Trunk sizes (24, 6, 5).
    ligand_radius, receptor_distance_max, distance_embed_dim
        As in :class:`ScoreModelConfig`.
    cross_cutoff
        Å; fixed ligand–residue cutoff, also the range of the cross distance smearing: 20.3, the score
        model's ``3 σ_tr(0) + 20`` at ``t = 0``, where DiffDock evaluates its confidence model.
    cross_max_neighbors
        Residues linked to each ligand atom, the nearest within the cutoff (24).
    dropout
        Dropout probability in the trunk's MLPs.
    head_hidden_dim, head_dropout
        Width and dropout of the logit MLP on the pooled ligand scalars (24, 0).
    max_noise_time
        Training poses are the matched pose noised at ``t ~ U(0, max_noise_time)``; 0.85 gives about half
        the poses within 2 Å of the crystal pose under the default schedule (measured on the validation
        split: 49 %).
    sampled_pose_fraction
        Share of training poses taken instead from poses trained networks docked beforehand
        (``train.docked_poses``, ``discodock dock-cache``); 0 (the default) uses noised poses only.
    sampling_steps
        Reverse-diffusion steps those docked poses must have been sampled with (20, as at inference).
    """

    ns: int = 24
    nv: int = 6
    num_conv_layers: int = 5
    ligand_radius: float = 5.0
    receptor_distance_max: float = 30.0
    cross_cutoff: float = 20.3
    cross_max_neighbors: int = 24
    distance_embed_dim: int = 32
    dropout: float = 0.1
    head_hidden_dim: int = 24
    head_dropout: float = 0.0
    max_noise_time: float = 0.85
    sampled_pose_fraction: float = 0.0
    sampling_steps: int = 20

    def __post_init__(self) -> None:
        _require_positive(self, "ns", "nv", "num_conv_layers", "distance_embed_dim", "head_hidden_dim")
        _require_positive(self, "ligand_radius", "receptor_distance_max", "cross_cutoff", "sampling_steps")
        _require_positive(self, "cross_max_neighbors")
        _require_probability(self, "dropout", "head_dropout")
        if not 0.0 < self.max_noise_time <= 1.0:
            raise ValueError(f"max_noise_time must lie in (0, 1], got {self.max_noise_time}")
        if not 0.0 <= self.sampled_pose_fraction <= 1.0:
            raise ValueError(f"sampled_pose_fraction must lie in [0, 1], got {self.sampled_pose_fraction}")


@dataclass(frozen=True)
class ModelConfig:
    """All network hyperparameters of one experiment.

    Attributes
    ----------
    score, encoder, prior
        The three networks' configs. The encoder and the prior use ``score.latent_tokens``.
    confidence
        The pose-ranking network's config (trained in a stage of its own, on the score model's schedule).
    """

    score: ScoreModelConfig = field(default_factory=ScoreModelConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    confidence: ConfidenceConfig = field(default_factory=ConfidenceConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from nested plain dicts (e.g. a YAML ``model:`` section); see :func:`dataclass_from_dict`."""
        return dataclass_from_dict(cls, data)


def dataclass_from_dict(config_class: type[ConfigT], data: dict[str, Any], where: str = "") -> ConfigT:
    """Build a (possibly nested) config dataclass from plain dicts.

    Fields whose type is a dataclass are built recursively from sub-dicts; omitted fields keep their
    defaults. An ``int`` is accepted for a ``float`` field, and so is a numeric string (PyYAML reads
    ``1e-3`` without a dot as a string).

    Parameters
    ----------
    config_class
        The dataclass to build.
    data
        Mapping of field names to values.
    where
        Dotted prefix naming ``data`` in error messages (e.g. ``"model.score"``).

    Returns
    -------
    ConfigT
        An instance of ``config_class``.

    Raises
    ------
    ValueError
        On an unknown key, a value of the wrong type, or a value the dataclass rejects; the message
        names the offending key by its dotted path.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping of keys, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config_class) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(
            f"{_dotted(where, unknown[0])}: unknown key (expected one of: {', '.join(sorted(fields))})"
        )
    field_types = typing.get_type_hints(config_class)
    values = {
        name: _field_value(field_types[name], value, _dotted(where, name)) for name, value in data.items()
    }
    try:
        return config_class(**values)
    except ValueError as error:
        raise ValueError(f"{where or config_class.__name__}: {error}") from None


def load_config(path: str | Path, config_class: type[ConfigT] = ModelConfig) -> ConfigT:  # type: ignore[assignment]
    """Read a YAML file whose top-level mapping holds the fields of ``config_class``.

    Parameters
    ----------
    path
        The YAML file.
    config_class
        Dataclass to build (default :class:`ModelConfig`).

    Raises
    ------
    InputError
        If the file is missing, is not YAML, or does not describe a valid ``config_class``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InputError(path, f"not valid YAML ({error})") from None
    try:
        return dataclass_from_dict(config_class, {} if data is None else data)
    except ValueError as error:
        raise InputError(path, str(error)) from None


def _field_value(field_type: Any, value: Any, where: str) -> Any:
    """Check (and for floats, convert) ``value`` for a field of type ``field_type``."""
    if dataclasses.is_dataclass(field_type):
        return dataclass_from_dict(field_type, value, where)
    if field_type is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if field_type is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if field_type is bool and not isinstance(value, bool):
        raise ValueError(f"{where}: expected true or false, got {value!r}")
    return value


def _dotted(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _require_positive(config: object, *names: str) -> None:
    for name in names:
        if not getattr(config, name) > 0:
            raise ValueError(f"{name} must be positive, got {getattr(config, name)}")


def _require_probability(config: object, *names: str) -> None:
    for name in names:
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {getattr(config, name)}")
