"""The data model's weights as one flat vector, and its stochastic/deterministic split.

METHOD section 3 (Eq. 26): all weights form one vector ``w``; a mask splits it into the sampled
part ``w_S`` and the point-estimated part ``w_D`` (INTERFACE.md "Which weights are sampled").
Weights are selected by leaf path or prefix (``theta``, ``R.layers.2``); the variants ``full``,
``bll-fixed`` and ``bll-reopt`` of the built-in model are presets of that selection (`preset`).
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._types import Array, Bool, Float
from .datamodel import solve
from .errors import ConfigError
from .model import NeuralODE

VARIANTS = ("full", "bll-fixed", "bll-reopt")


def _path_name(path) -> str:
    """A leaf's path as a dotted name, e.g. ``R.layers.0.weight``."""
    return ".".join(_key_name(p) for p in path)


def _key_name(entry) -> str:
    if isinstance(entry, jax.tree_util.GetAttrKey):
        return entry.name
    if isinstance(entry, jax.tree_util.SequenceKey):
        return str(entry.idx)
    if isinstance(entry, jax.tree_util.DictKey):
        return str(entry.key)
    return str(entry)


def weight_names(params) -> list[str]:
    """Name every scalar of a parameter pytree in `ravel_pytree` order.

    Names read as module path and index, e.g. ``R.layers.0.weight[0,1]`` or ``R.layers.0.bias[2]``.
    """
    names = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        stem = _path_name(path)
        for index in np.ndindex(*np.shape(leaf)):
            names.append(f"{stem}[{','.join(map(str, index))}]")
    return names


def leaf_path(name: str) -> str:
    """The leaf path of a weight name: the name without its index (``theta[1]`` -> ``theta``)."""
    return name.partition("[")[0]


def matches(path: str, prefix: str) -> bool:
    """Whether ``prefix`` selects the leaf ``path``: equal, or a parent of it (``R`` selects
    ``R.layers.0.weight``)."""
    return path == prefix or path.startswith(prefix + ".")


class WeightPartition(eqx.Module):
    """Maps between a flat weight vector and the data model, and splits it into ``w_S``/``w_D``.

    The flat vector holds the model's weights (its inexact-array leaves, less the constants),
    then, with a learned noise, ``log_sigma`` per output. It also knows how the model is solved:
    its Heun sub-steps, and for a model in the data file's units (a user's model) the output
    scaling that takes its predictions into the likelihood's units.

    Attributes:
        names: name of each flat entry (``nw`` strings).
        stochastic_index: indices of the sampled entries ``w_S`` (``ns``).
        deterministic_index: indices of the point-estimated entries ``w_D``.
        rest: ``"fixed"`` (``w_D`` stays at the MLE) or ``"reoptimise"``.
        substeps: Heun steps per observation interval.
        n_noise: number of trailing ``log_sigma`` entries (0 without a learned noise).
        fixed: leaf paths and prefixes of the model's constant array leaves.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    stochastic_index: tuple[int, ...] = eqx.field(static=True)
    deterministic_index: tuple[int, ...] = eqx.field(static=True)
    rest: str = eqx.field(static=True)
    substeps: int = eqx.field(static=True)
    n_noise: int = eqx.field(static=True)
    _static: eqx.Module
    fixed: tuple[str, ...] = eqx.field(static=True)
    _unravel: object = eqx.field(static=True)
    _shift: Float[Array, " ny"] | None
    _scale: Float[Array, " ny"] | None

    @property
    def n_weights(self) -> int:
        return len(self.names)

    @property
    def n_stochastic(self) -> int:
        return len(self.stochastic_index)

    @property
    def stochastic_mask(self) -> Bool[np.ndarray, " nw"]:
        mask = np.zeros(self.n_weights, dtype=bool)
        mask[list(self.stochastic_index)] = True
        return mask

    @property
    def reoptimise_deterministic(self) -> bool:
        return self.rest == "reoptimise"

    @property
    def stochastic_names(self) -> tuple[str, ...]:
        return tuple(self.names[i] for i in self.stochastic_index)

    def flatten(self, model, log_sigma=None) -> Float[Array, " nw"]:
        """The flat vector of ``model``'s weights (and ``log_sigma``, zeros when not given)."""
        flat, _ = ravel_pytree(eqx.filter(model, _weight_filter(model, self.fixed)))
        if self.n_noise:
            noise = jnp.zeros(self.n_noise, flat.dtype) if log_sigma is None else log_sigma
            flat = jnp.concatenate([flat, jnp.asarray(noise, flat.dtype)])
        return flat

    def model(self, w: Float[Array, " nw"]):
        """The data model whose weights are the flat vector ``w``."""
        return eqx.combine(self._unravel(w[: self.n_weights - self.n_noise]), self._static)

    def log_sigma(self, w: Float[Array, "*batch nw"]) -> Float[Array, "*batch ny"] | None:
        """The learned log noise sd per output (in the data's units), or ``None``."""
        return w[..., self.n_weights - self.n_noise :] if self.n_noise else None

    def predict(
        self, w: Float[Array, " nw"], t: Float[Array, " T"], x: Float[Array, "T nx"],
        y0: Float[Array, " ny"],
    ) -> Float[Array, "T ny"]:  # fmt: skip
        """The model's outputs on one group's grid, in the likelihood's (scaled) units; ``y0``
        is in those units too."""
        if self._scale is None:
            return solve(self.model(w), t, x, y0, self.substeps)
        y = solve(self.model(w), t, x, y0 * self._scale + self._shift, self.substeps)
        return (y - self._shift) / self._scale

    def join(
        self, w_s: Float[Array, "*batch ns"], w_d: Float[Array, " nd"]
    ) -> Float[Array, "*batch nw"]:
        """Assemble full vectors from stochastic parts (any leading batch axes) and one ``w_d``."""
        batch = w_s.shape[:-1]
        w = jnp.zeros((*batch, self.n_weights), dtype=w_s.dtype)
        w = w.at[..., np.asarray(self.stochastic_index, dtype=int)].set(w_s)
        w_d = jnp.broadcast_to(w_d.astype(w_s.dtype), (*batch, w_d.shape[-1]))
        return w.at[..., np.asarray(self.deterministic_index, dtype=int)].set(w_d)

    def split(self, w: Float[Array, " nw"]) -> tuple[Float[Array, " ns"], Float[Array, " nd"]]:
        s = np.asarray(self.stochastic_index, dtype=int)
        d = np.asarray(self.deterministic_index, dtype=int)
        return w[..., s], w[..., d]


def preset(model, variant: str, submodels: Sequence[str] = ("R", "Z")) -> tuple[object, str]:
    """``(stochastic, rest)`` of a ``[partition] variant`` preset of the built-in model.

    ``full`` samples every weight; ``bll-fixed`` / ``bll-reopt`` the last linear layer of each
    sub-model in ``submodels`` (absent ones, e.g. the identity observation, are skipped), the
    rest fixed at the MLE or re-optimised (METHOD section 3).
    """
    if variant not in VARIANTS:
        raise ConfigError(f"partition.variant = {variant!r}; use one of {', '.join(VARIANTS)}")
    if variant == "full":
        return "all", "fixed"
    if not isinstance(model, NeuralODE):
        raise ConfigError(
            f"partition.variant = {variant!r} is a preset of the built-in model; with your own "
            "model, name the sampled weights in partition.stochastic"
        )
    prefixes = []
    for sub in submodels:
        if sub not in ("R", "Z"):
            raise ConfigError(f"partition.submodels entry {sub!r} is not 'R' or 'Z'")
        mlp = getattr(model, sub)
        if mlp is not None:
            prefixes.append(f"{sub}.layers.{len(mlp.layers) - 1}")
    if not prefixes:
        raise ConfigError("partition.submodels names no sub-model that the data model has")
    return prefixes, "reoptimise" if variant == "bll-reopt" else "fixed"


def _weight_filter(model, fixed: tuple[str, ...]):
    """A filter of ``model``: its inexact arrays except those under a ``fixed`` path."""

    def is_weight(path, leaf) -> bool:
        return eqx.is_inexact_array(leaf) and not any(matches(_path_name(path), f) for f in fixed)

    return jax.tree_util.tree_map_with_path(is_weight, model)


NOISE = "log_sigma"
"""Leaf path of the learned noise's log sd (``[likelihood] sigma = "learn"``)."""


def make_partition(
    model,
    *,
    stochastic: str | Sequence[str] = "all",
    rest: str = "fixed",
    fixed: Sequence[str] = (),
    substeps: int = 1,
    n_noise: int = 0,
    sample_noise: bool = True,
    units=None,
) -> WeightPartition:
    """Build the `WeightPartition` of a data model.

    Args:
        model: the data model (any module of the `langevin_uq.datamodel` interface).
        stochastic: ``"all"`` or the leaf paths and prefixes of the sampled weights.
        rest: ``"fixed"`` or ``"reoptimise"``: what happens to the other weights.
        fixed: leaf paths and prefixes of array leaves that are constants (never fitted).
        substeps: Heun steps per observation interval.
        n_noise: outputs with a learned noise sd (its ``log_sigma`` entries end the vector).
        sample_noise: whether ``log_sigma`` is sampled when ``stochastic`` selects it (``"all"``);
            ``False`` holds it at the MLE (the Gauss-Newton guide, which linearises the
            predictions for one noise sd), and refuses ``stochastic`` entries that name it.
        units: for a model in the data file's units, the `langevin_uq.data.Scaler` that maps
            them to the likelihood's; ``None`` when the model works in the scaled units.

    Raises:
        ConfigError: a path that selects no weight, a sampled weight that is also fixed, or a
            model leaf called ``log_sigma`` beside a learned noise.
    """
    if rest not in ("fixed", "reoptimise"):
        raise ConfigError(f"partition.rest = {rest!r}; use 'fixed' or 'reoptimise'")
    if substeps < 1:
        raise ConfigError(f"model.substeps must be at least 1, got {substeps}")
    fixed = tuple(fixed)
    arrays = jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_inexact_array))[0]
    paths = [_path_name(path) for path, _ in arrays]
    for prefix in fixed:
        if not any(matches(p, prefix) for p in paths):
            raise ConfigError(f"model.fixed entry {prefix!r} names no array leaf of the model")
    if n_noise and any(matches(p, NOISE) for p in paths):
        raise ConfigError(
            "the model has a leaf called 'log_sigma', which likelihood.sigma = 'learn' adds; "
            "rename it"
        )

    params, static = eqx.partition(model, _weight_filter(model, fixed))
    _, unravel = ravel_pytree(params)
    names = weight_names(params) + [f"{NOISE}[{k}]" for k in range(n_noise)]
    if not names:
        raise ConfigError("the model has no weights to fit (every array leaf is fixed)")
    leaves = [leaf_path(n) for n in names]
    if stochastic == "all":
        mask = np.ones(len(names), dtype=bool)
    else:
        if isinstance(stochastic, str):
            stochastic = [stochastic]
        mask = np.zeros(len(names), dtype=bool)
        for prefix in stochastic:
            hit = np.array([matches(p, prefix) for p in leaves])
            if not hit.any():
                why = " (it is in model.fixed)" if any(matches(prefix, f) for f in fixed) else ""
                raise ConfigError(
                    f"partition.stochastic entry {prefix!r} names no weight of the model{why}; "
                    f"its leaves are {', '.join(dict.fromkeys(leaves))}"
                )
            mask |= hit
    noise = np.array([matches(p, NOISE) for p in leaves])
    if not sample_noise and noise.any():
        if stochastic != "all" and (mask & noise).any():
            raise ConfigError(
                "sampler.drift_init = 'gauss-newton' holds the learned noise at its MLE; remove "
                "'log_sigma' from partition.stochastic, or use drift_init = 'laplace'"
            )
        mask &= ~noise
    index = np.arange(len(names))
    shift = scale = None
    if units is not None:
        shift, scale = jnp.asarray(units.shift), jnp.asarray(units.scale)
    return WeightPartition(
        names=tuple(names),
        stochastic_index=tuple(int(i) for i in index[mask]),
        deterministic_index=tuple(int(i) for i in index[~mask]),
        rest=rest,
        substeps=substeps,
        n_noise=n_noise,
        _static=static,
        fixed=fixed,
        _unravel=unravel,
        _shift=shift,
        _scale=scale,
    )
