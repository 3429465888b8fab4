"""The built-in neural-ODE data model (METHOD section 2, Eq. 1, 4, 5, 22).

A hidden state h evolves by ``dh/dt = R(h, x(t))`` from ``h(t_0) = h_0``; the observed outputs are
``y_hat(t) = Z(h(t), x(t))``. `langevin_uq.datamodel.solve` integrates it like any data model.
"""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from ._types import Array, Float, PRNGKeyArray
from .errors import ConfigError

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda z: z,
}


def activation(name: str) -> Callable[[Array], Array]:
    """Look up an activation by its config name."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        known = ", ".join(sorted(ACTIVATIONS))
        raise ConfigError(f"unknown activation {name!r}; use one of {known}") from None


class MLP(eqx.Module):
    """A multilayer perceptron with per-layer widths; the last layer is linear.

    With no hidden layers it is a single affine map, which is how ``R_hidden = []`` gives a
    linear right-hand side ``dx/dt = W x + b``.
    """

    layers: list[eqx.nn.Linear]
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int,
        hidden: Sequence[int],
        activation_name: str,
        *,
        key: PRNGKeyArray,
    ):
        sizes = [in_size, *hidden, out_size]
        keys = jr.split(key, len(sizes) - 1)
        self.layers = [
            eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        ]
        self.activation = activation(activation_name)

    def __call__(self, z: Float[Array, " n_in"]) -> Float[Array, " n_out"]:
        for layer in self.layers[:-1]:
            z = self.activation(layer(z))
        return self.layers[-1](z)


class NeuralODE(eqx.Module):
    """The built-in data model: a hidden-state neural ODE with an observation model.

    One implementation of the data-model interface (`langevin_uq.datamodel`).

    Attributes:
        R: right-hand side MLP on ``[h, x]`` giving ``dh/dt`` (size ``n_state``).
        Z: observation MLP on ``[h, x]`` giving ``y_hat``; ``None`` is the identity observation,
            which reads the first ``n_outputs`` entries of the state.
        n_state: size of the ODE state.
        n_outputs: number of observed outputs.
        known_initial_state: whether ``h_0`` starts with the data's ``y0`` (identity
            observation); otherwise ``h_0 = 0`` (Eq. 1).
    """

    R: MLP
    Z: MLP | None
    n_state: int = eqx.field(static=True)
    n_outputs: int = eqx.field(static=True)
    known_initial_state: bool = eqx.field(static=True)

    def initial_state(
        self, y0: Float[Array, " ny"], x0: Float[Array, " nx"]
    ) -> Float[Array, " nh"]:
        h0 = jnp.zeros(self.n_state, dtype=y0.dtype)
        if self.known_initial_state:
            h0 = h0.at[: self.n_outputs].set(y0)
        return h0

    def observe(self, h: Float[Array, " nh"], x: Float[Array, " nx"]) -> Float[Array, " ny"]:
        if self.Z is None:
            return h[: self.n_outputs]
        return self.Z(jnp.concatenate([h, x]))

    def vector_field(
        self, t: Float[Array, ""], h: Float[Array, " nh"], x: Float[Array, " nx"]
    ) -> Float[Array, " nh"]:
        return self.R(jnp.concatenate([h, x]))


def build_model(
    *,
    n_outputs: int,
    n_inputs: int,
    hidden_state: int,
    R_hidden: Sequence[int],
    R_activation: str,
    observation: str,
    Z_hidden: Sequence[int],
    Z_activation: str,
    key: PRNGKeyArray,
) -> NeuralODE:
    """Construct a `NeuralODE` from the ``[model]`` config keys and the data's sizes.

    ``hidden_state = 0`` observes the state itself (state = outputs, ``h_0 = y0``) and needs the
    identity observation. With ``hidden_state > 0`` and the identity observation the first
    ``n_outputs`` state entries are observed and start at ``y0``; with ``observation = "mlp"`` the
    hidden state starts at zero and ``Z`` maps ``[h, x]`` to the outputs.
    """
    if observation not in ("identity", "mlp"):
        raise ConfigError(
            f"model.observation = {observation!r} is not available; use 'identity' or 'mlp'"
            " (the stress 'potential' observation arrives with the material models)"
        )
    if hidden_state < 0:
        raise ConfigError(f"model.hidden_state must be 0 or positive, got {hidden_state}")
    if observation == "identity":
        n_state = n_outputs if hidden_state == 0 else hidden_state
        if n_state < n_outputs:
            raise ConfigError(
                f"model.hidden_state = {hidden_state} is smaller than the {n_outputs} observed "
                "outputs, which the identity observation reads from the state"
            )
    else:
        if hidden_state == 0:
            raise ConfigError("model.observation = 'mlp' needs model.hidden_state > 0")
        n_state = hidden_state
    k_r, k_z = jr.split(key)
    R = MLP(n_state + n_inputs, n_state, R_hidden, R_activation, key=k_r)
    Z = None
    if observation == "mlp":
        Z = MLP(n_state + n_inputs, n_outputs, Z_hidden, Z_activation, key=k_z)
    return NeuralODE(
        R=R,
        Z=Z,
        n_state=n_state,
        n_outputs=n_outputs,
        known_initial_state=observation == "identity",
    )
