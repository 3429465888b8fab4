"""The data model's weights as one flat vector, and its stochastic/deterministic split.

METHOD section 3 (Eq. 26): all weights form one vector ``w``; a mask splits it into the sampled
part ``w_S`` and the point-estimated part ``w_D``. The variants are ``full`` (every weight
sampled), ``bll-fixed`` and ``bll-reopt`` (the last linear layer of each chosen sub-model is
sampled; the rest is frozen at the MLE or re-optimised jointly with the sampler).
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._types import Array, Bool, Float
from .errors import ConfigError
from .model import NeuralODE

VARIANTS = ("full", "bll-fixed", "bll-reopt")


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
        stem = ".".join(_key_name(p) for p in path)
        for index in np.ndindex(*np.shape(leaf)):
            names.append(f"{stem}[{','.join(map(str, index))}]")
    return names


class WeightPartition(eqx.Module):
    """Maps between a flat weight vector and the data model, and splits it into ``w_S``/``w_D``.

    Attributes:
        names: name of each flat entry (``nw`` strings).
        stochastic_index: indices of the sampled entries ``w_S`` (``ns``).
        deterministic_index: indices of the point-estimated entries ``w_D``.
        variant: ``"full"``, ``"bll-fixed"`` or ``"bll-reopt"``.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    stochastic_index: tuple[int, ...] = eqx.field(static=True)
    deterministic_index: tuple[int, ...] = eqx.field(static=True)
    variant: str = eqx.field(static=True)
    _static: NeuralODE
    _unravel: object = eqx.field(static=True)

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
        return self.variant == "bll-reopt"

    def flatten(self, model: NeuralODE) -> Float[Array, " nw"]:
        flat, _ = ravel_pytree(eqx.filter(model, eqx.is_inexact_array))
        return flat

    def model(self, w: Float[Array, " nw"]) -> NeuralODE:
        """The data model whose weights are the flat vector ``w``."""
        return eqx.combine(self._unravel(w), self._static)

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


def make_partition(
    model: NeuralODE, variant: str, submodels: Sequence[str] = ("R", "Z")
) -> WeightPartition:
    """Build the `WeightPartition` of ``model`` for a config variant.

    Args:
        model: the data model whose weights are split.
        variant: ``"full"``, ``"bll-fixed"`` or ``"bll-reopt"``.
        submodels: for the BLL variants, which sub-models (``"R"``, ``"Z"``) contribute their last
            linear layer to ``w_S``; absent sub-models (identity observation) are skipped.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"partition.variant = {variant!r}; use one of {', '.join(VARIANTS)}")
    params, static = eqx.partition(model, eqx.is_inexact_array)
    _, unravel = ravel_pytree(params)
    names = weight_names(params)
    if variant == "full":
        mask = np.ones(len(names), dtype=bool)
    else:
        prefixes = []
        for sub in submodels:
            if sub not in ("R", "Z"):
                raise ConfigError(f"partition.submodels entry {sub!r} is not 'R' or 'Z'")
            mlp = getattr(model, sub)
            if mlp is not None:
                prefixes.append(f"{sub}.layers.{len(mlp.layers) - 1}.")
        if not prefixes:
            raise ConfigError("partition.submodels names no sub-model that the data model has")
        mask = np.array([n.startswith(tuple(prefixes)) for n in names])
    index = np.arange(len(names))
    return WeightPartition(
        names=tuple(names),
        stochastic_index=tuple(int(i) for i in index[mask]),
        deterministic_index=tuple(int(i) for i in index[~mask]),
        variant=variant,
        _static=static,
        _unravel=unravel,
    )
