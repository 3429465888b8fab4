"""Issue 16, item 2: the ELBO's gradient with the Gauss-Newton guide (`drift_init =
"gauss-newton"`, training on) against finite differences, and what it costs.

1. ``--check``: on a 1-4-4-1 tanh NODE (33 weights) fitted to one noisy relaxation curve (the
   data of `schlogl_node_vs_nuts.toml` at a small size), float64, one fixed key: the directional
   derivative of the ELBO's Monte Carlo estimate along a random direction of the drift's MLP,
   by autodiff and by central differences, with the default (Laplace) start and the guide.
2. ``--time``: seconds of one ELBO value and gradient on the 321-weight NODE of
   `schlogl_node_vs_nuts.toml` (``--replicas`` x 100 steps), guided and with the default drift,
   in one process (compilation excluded).

    .venv/bin/python bench/guide_gradient.py --check --time [--replicas 64]
"""

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _problem import problem_for
from _timing import best_time

from langevin_uq.config import Config
from langevin_uq.methods import method_for
from langevin_uq.systems.ou import OUSystem, simulate_ou

EPS = 1e-4  # central differences agreed to 6 digits from 1e-2 to 1e-5


def _relaxation(n_times: int = 26):
    law = OUSystem(theta_sd=0.0, mu_sd=0.0, n=4, n_times=n_times)
    return simulate_ou(law, jr.key(0), noise_sd=0.05)


def _objective(config: Config, data):
    problem = problem_for(data, config)
    method = method_for(config)
    params, record = method.init(problem)
    objective = method.objective(problem, record)
    dynamic, static = eqx.partition(params, eqx.is_inexact_array)

    def loss(d, key):
        return objective(eqx.combine(d, static), key, jnp.asarray(0))[0]

    return loss, dynamic


def check() -> None:
    jax.config.update("jax_enable_x64", True)
    for init in ("laplace", "gauss-newton"):
        config = Config().replace(
            model={"R_hidden": [4, 4]}, likelihood={"kind": "gaussian", "sigma": 0.05},
            prior={"scale": 0.5}, data={"scaling": "standardize", "validation_fraction": 0.0},
            sampler={"replicas": 16, "steps": 40, "drift_init": init, "final_dtau": 1e-5},
            train={"mle_epochs": 1000, "x64": True},
        )  # fmt: skip
        loss, dynamic = _objective(config, _relaxation())
        mlp = dynamic.drift.residual.mlp
        leaves = jax.tree.leaves(mlp)
        keys = jr.split(jr.key(1), len(leaves))
        step = [0.05 * jr.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)]
        zero = jax.tree.map(jnp.zeros_like, dynamic)
        direction = eqx.tree_at(lambda p: p.drift.residual.mlp, zero,
                                jax.tree.unflatten(jax.tree.structure(mlp), step))  # fmt: skip
        point = jax.tree.map(jnp.add, dynamic, direction)  # a generic point: last layer not zero
        key = jr.key(7)
        value = eqx.filter_jit(loss)
        grad = eqx.filter_jit(eqx.filter_grad(loss))(point, key)
        pairs = zip(jax.tree.leaves(grad), jax.tree.leaves(direction), strict=True)
        auto = sum(jnp.vdot(g, d) for g, d in pairs)
        up = jax.tree.map(lambda p, d: p + EPS * d, point, direction)
        down = jax.tree.map(lambda p, d: p - EPS * d, point, direction)
        fd = (value(up, key) - value(down, key)) / (2 * EPS)
        print(f"{init}: autodiff {float(auto):.6g}, central difference {float(fd):.6g} "
              f"(ratio {float(auto / fd):.4f})")  # fmt: skip


def timing(replicas: int) -> None:
    node = Config.load("bench/schlogl_node_vs_nuts.toml").replace(
        sampler={"replicas": replicas}, train={"mle_epochs": 500}
    )
    seconds = {}
    for init in ("laplace", "gauss-newton"):
        config = node.replace(sampler={"drift_init": init})
        if init == "laplace":
            config = config.replace(sampler={"final_dtau": "auto"})
        loss, dynamic = _objective(config, _relaxation())
        grad = eqx.filter_jit(eqx.filter_value_and_grad(loss))
        seconds[init] = best_time(grad, dynamic, jr.key(1), repeat=2)
        print(f"{init}: {seconds[init]:.3f} s per ELBO value and gradient", flush=True)
    ratio = seconds["gauss-newton"] / seconds["laplace"]
    print(f"guided / default drift: {ratio:.1f}x ({replicas} replicas x 100 steps)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--replicas", type=int, default=64)
    args = parser.parse_args()
    if args.check:
        check()
    if args.time:
        timing(args.replicas)
