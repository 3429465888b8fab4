"""The Ornstein-Uhlenbeck prior on the stochastic weights (METHOD section 5, Eq. 3).

The prior SDE is preconditioned: ``dw = -(w - w_bar) dtau + gamma sqrt(2) s dB`` with a scale
``s`` per weight. Its stationary law is ``N(w_bar, diag s^2)`` (with ``gamma = 1``), as for the
paper's ``dw = -(w - w_bar) / s^2 dtau + sqrt(2) dB``, but every weight relaxes at rate 1
whatever its scale, so small scales are not stiff and a pseudo-time span ``T >= 3`` forgets the
start for every weight alike (METHOD section 5, "Which posterior"). In whitened coordinates
``u = (w - w_bar) / s`` it is the standard OU process ``du = -u dtau + gamma sqrt(2) dB``, which
is where the sampler works.
"""

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._types import Array, Float
from .errors import ConfigError
from .weights import leaf_path, matches


class OUPrior(eqx.Module):
    """Stationary mean and scale per stochastic weight.

    Attributes:
        mean: the prior mean ``w_bar`` (zeros or the MLE), shape ``(ns,)``.
        scale: the stationary standard deviation ``s`` per weight, shape ``(ns,)``.
    """

    mean: Float[Array, " ns"]
    scale: Float[Array, " ns"]

    def __init__(self, mean: Float[Array, " ns"], scale: float | Float[Array, " ns"]):
        self.mean = jnp.asarray(mean)
        self.scale = jnp.broadcast_to(jnp.asarray(scale, self.mean.dtype), self.mean.shape)

    def __check_init__(self):
        scale = np.asarray(self.scale)
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError(f"prior scale must be positive, got {scale}")

    def whiten(self, w: Float[Array, "... ns"]) -> Float[Array, "... ns"]:
        """``u = (w - w_bar) / s``: weights in prior units."""
        return (w - self.mean) / self.scale

    def unwhiten(self, u: Float[Array, "... ns"]) -> Float[Array, "... ns"]:
        """``w = w_bar + s u``."""
        return self.mean + self.scale * u

    def transition(self, remaining, start: Float[Array, "... ns"], init_sd: float = 0.0):
        """Mean and variance of ``w`` after pseudo-time ``remaining`` from ``start + init_sd xi``.

        This is the prior the path-KL ELBO regularises towards; for ``remaining >= 3`` it is
        the stationary law to within 0.25 % in variance.
        """
        a = np.exp(-remaining)
        mean = self.mean + a * (start - self.mean)
        var = self.scale**2 * (1 - a**2) + init_sd**2 * a**2
        return mean, var


def per_weight(
    names: Sequence[str], table: Mapping[str, float | list], default: np.ndarray, what: str
) -> np.ndarray:
    """Values per weight from a table of leaf paths (INTERFACE.md "Which weights are sampled").

    Args:
        names: every weight's name (``theta[1]``), in flat order.
        table: leaf path or prefix -> a number, or a nested list of the leaf's shape (for a
            key that is a whole leaf path). The longest matching key wins.
        default: the value of each weight no key matches, ``(len(names),)``.
        what: the config key, for messages (``prior.scale``).

    Raises:
        ConfigError: a key that matches no weight, or a list of the wrong shape.
    """
    paths = [leaf_path(n) for n in names]
    shapes = _leaf_shapes(names)
    values = np.array(default, dtype=np.float64, copy=True)
    for key in table:
        if not any(matches(p, key) for p in paths):
            known = ", ".join(dict.fromkeys(paths))
            raise ConfigError(f"{what} entry {key!r} matches no weight; the weights are {known}")
    keys = sorted(table, key=len)  # longer keys later: the longest match wins
    for key in keys:
        value = table[key]
        if isinstance(value, list):
            array = np.asarray(value, dtype=np.float64)
            if key not in shapes or array.shape != shapes[key]:
                raise ConfigError(
                    f"{what} entry {key!r} is a list of shape {array.shape}; a list must name one "
                    f"leaf and have its shape"
                    + (f" {shapes[key]}" if key in shapes else " (use a number for a prefix)")
                )
        for i, (name, path) in enumerate(zip(names, paths, strict=True)):
            if matches(path, key):
                values[i] = array[_index(name)] if isinstance(value, list) else float(value)
    return values


def _index(name: str) -> tuple[int, ...]:
    inside = name.partition("[")[2].rstrip("]")
    return tuple(int(i) for i in inside.split(",")) if inside else ()


def _leaf_shapes(names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for name in names:
        index = _index(name)
        path = leaf_path(name)
        old = shapes.get(path, tuple(0 for _ in index))
        shapes[path] = tuple(max(a, i + 1) for a, i in zip(old, index, strict=True))
    return shapes


def prior_vectors(
    names: Sequence[str], w_mle: np.ndarray, options
) -> tuple[np.ndarray, np.ndarray]:
    """The prior's mean and scale per weight of ``names`` from the ``[prior]`` options.

    ``w_mle`` holds the MLE of the same weights (what ``"mle"`` means).
    """
    w_mle = np.asarray(w_mle, np.float64)

    def base(choice: str) -> np.ndarray:
        return w_mle.copy() if choice == "mle" else np.zeros_like(w_mle)

    if isinstance(options.mean, str):
        mean = base(options.mean)
    else:
        mean = per_weight(names, options.mean, base(options.default_mean), "prior.mean")
    if isinstance(options.scale, dict):
        default = np.full(len(names), options.default_scale)
        scale = per_weight(names, options.scale, default, "prior.scale")
    else:
        scale = np.full(len(names), float(options.scale))
    return mean, scale


def ou_prior(partition, w_mle: Float[Array, " nw"], options) -> OUPrior:
    """The OU prior of the stochastic weights of ``partition`` (a `WeightPartition`) from the
    ``[prior]`` options, its tables resolved per weight, in the dtype of ``w_mle``."""
    mean, scale = prior_vectors(partition.names, np.asarray(w_mle), options)
    dtype = w_mle.dtype
    return OUPrior(mean=jnp.asarray(partition.split(mean)[0], dtype),
                   scale=jnp.asarray(partition.split(scale)[0], dtype))  # fmt: skip
