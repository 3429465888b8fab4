"""Issue 16, item 2: the ELBO's gradient with the Gauss-Newton guide (`drift_init =
"gauss-newton"`, training on) against finite differences, and what it costs.

1. ``--check``: on a 1-4-4-1 tanh NODE (33 weights) fitted to one noisy relaxation curve (the
   data of `schlogl_node_vs_nuts.toml` at a small size), float64, one fixed key: the directional
   derivative of the ELBO's Monte Carlo estimate along a random direction of the drift's MLP,
   by autodiff and by central differences, with the default (Laplace) start and the guide.
2. ``--estimators``: the same set-up at the same generic point, 400 keys: the reparameterised
   gradient (through the paths) against the score-function one on detached paths
   (`langevin_uq.methods.ls.ELBO.detached`), for both starts: their spread across keys and
   whether their means agree (z of each coordinate's difference).
3. ``--time``: seconds of one ELBO value and gradient on the 321-weight NODE of
   `schlogl_node_vs_nuts.toml` (``--replicas`` x 100 steps): the default drift and the guide,
   each with both estimators, in one process (compilation excluded).

    .venv/bin/python bench/guide_gradient.py --check --estimators --time [--replicas 64]
"""

import argparse
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _problem import problem_for
from _timing import best_time

from langevin_uq.config import Config
from langevin_uq.methods import method_for
from langevin_uq.systems.ou import OUSystem, simulate_ou

EPS = 1e-4  # central differences agreed to 6 digits from 1e-2 to 1e-5


def _relaxation(n_times: int = 26):
    law = OUSystem(theta_sd=0.0, mu_sd=0.0, n=4, n_times=n_times)
    return simulate_ou(law, jr.key(0), noise_sd=0.05)


def _objective(config: Config, data, detached: bool | None = None):
    problem = problem_for(data, config)
    method = method_for(config)
    params, record = method.init(problem)
    objective = method.objective(problem, record)
    if detached is not None:
        objective = dataclasses.replace(objective, detached=detached)
    dynamic, static = eqx.partition(params, eqx.is_inexact_array)

    def loss(d, key):
        return objective(eqx.combine(d, static), key, jnp.asarray(0))[0]

    return loss, dynamic


def _small(init: str) -> Config:
    return Config().replace(
        model={"R_hidden": [4, 4]}, likelihood={"kind": "gaussian", "sigma": 0.05},
        prior={"scale": 0.5}, data={"scaling": "standardize", "validation_fraction": 0.0},
        sampler={"replicas": 16, "steps": 40, "drift_init": init, "final_dtau": 1e-5},
        train={"mle_epochs": 1000, "x64": True},
    )  # fmt: skip


def _generic_point(dynamic):
    """A random direction in the drift's MLP and the point one step along it (the start's last
    layer is zero; this one is not)."""
    mlp = dynamic.drift.residual.mlp
    leaves = jax.tree.leaves(mlp)
    keys = jr.split(jr.key(1), len(leaves))
    step = [0.05 * jr.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)]
    zero = jax.tree.map(jnp.zeros_like, dynamic)
    direction = eqx.tree_at(lambda p: p.drift.residual.mlp, zero,
                            jax.tree.unflatten(jax.tree.structure(mlp), step))  # fmt: skip
    return direction, jax.tree.map(jnp.add, dynamic, direction)


def _flat(tree, n: int) -> np.ndarray:
    return np.concatenate([np.asarray(x).reshape(n, -1) for x in jax.tree.leaves(tree)], axis=1)


def check() -> None:
    jax.config.update("jax_enable_x64", True)
    for init in ("laplace", "gauss-newton"):
        loss, dynamic = _objective(_small(init), _relaxation())
        direction, point = _generic_point(dynamic)
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


def estimators(keys: int = 400, chunk: int = 25) -> None:
    jax.config.update("jax_enable_x64", True)
    for init in ("laplace", "gauss-newton"):
        flat = {}
        for detached in (False, True):
            loss, dynamic = _objective(_small(init), _relaxation(), detached)
            direction, point = _generic_point(dynamic)
            grad = eqx.filter_jit(jax.vmap(eqx.filter_grad(loss), in_axes=(None, 0)))
            ks = jr.split(jr.key(5), keys)
            parts = [_flat(grad(point, ks[i : i + chunk]), chunk) for i in range(0, keys, chunk)]
            flat[detached] = g = np.concatenate(parts)
            along = g @ _flat(direction, 1)[0]
            print(f"{init}, {'detached' if detached else 'reparameterised'}: derivative along the "
                  f"direction {along.mean():.4g} (se {along.std() / np.sqrt(keys):.3g}, sd "
                  f"{along.std():.3g}); per-coordinate sd, mean {g.std(0).mean():.4g}")  # fmt: skip
        a, b = flat[False], flat[True]
        se = np.sqrt((a.var(0) + b.var(0)) / keys)
        z = (a.mean(0) - b.mean(0)) / np.where(se > 0, se, 1)
        rms, spread = np.sqrt(np.mean(z**2)), np.sqrt(a.var(0).sum() / b.var(0).sum())
        print(f"{init}: means' difference, z over {z.size} coordinates: rms {rms:.2f}, max |z| "
              f"{np.abs(z).max():.2f}; spread reparameterised / detached {spread:.3g}",
              flush=True)  # fmt: skip


def timing(replicas: int) -> None:
    node = Config.load("bench/schlogl_node_vs_nuts.toml").replace(
        sampler={"replicas": replicas}, train={"mle_epochs": 500}
    )
    seconds = {}
    for init in ("laplace", "gauss-newton"):
        config = node.replace(sampler={"drift_init": init})
        if init == "laplace":
            config = config.replace(sampler={"final_dtau": "auto"})
        for detached in (False, True):
            loss, dynamic = _objective(config, _relaxation(), detached)
            grad = eqx.filter_jit(eqx.filter_value_and_grad(loss))
            name = f"{init}, {'detached' if detached else 'reparameterised'}"
            seconds[name] = best_time(grad, dynamic, jr.key(1), repeat=2)
            print(f"{name}: {seconds[name]:.3f} s per ELBO value and gradient", flush=True)
    base = seconds["laplace, reparameterised"]
    print(
        f"each against the default drift's reparameterised gradient ({replicas} replicas x "
        f"100 steps): " + ", ".join(f"{k} {v / base:.1f}x" for k, v in seconds.items())
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--estimators", action="store_true")
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--replicas", type=int, default=64)
    args = parser.parse_args()
    if args.check:
        check()
    if args.estimators:
        estimators()
    if args.time:
        timing(args.replicas)
