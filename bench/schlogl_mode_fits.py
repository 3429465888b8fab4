"""Issue 17, items 2-3: the final-time modes of one Schloegl fit with the paper's likelihood.

The demo's data, held-out data and configuration (`langevin_uq.demos.schlogl_config(
"marginal-mixture")`, the quick size unless ``--full``), with overrides: the method, ``beta``,
``time_reduction``, ``sampler.modes`` and the annealing ``gamma0``. Prints one Markdown row:
low-mode fraction, both modes' mean and sd, W1 final / gap (as `langevin_uq.demos.schlogl`'s
table), the mixture start's Laplace fractions (when ``modes > 1``), the fit's seconds, and for
the Langevin sampler the importance-weighted low-mode fraction of its own replicas against the
posterior (`langevin_uq.path_weights`, 4096 replicas) with its standard error and ESS.

    .venv/bin/python bench/schlogl_mode_fits.py --method ls --seed 0 --modes auto --out /tmp/x
"""

import argparse
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _problem import problem_for

from langevin_uq import metrics
from langevin_uq.demos import final_time_modes, schlogl_config
from langevin_uq.demos._common import fit_and_score
from langevin_uq.modes import log_posterior
from langevin_uq.path_weights import path_log_weights
from langevin_uq.problem import predict_groups
from langevin_uq.seeding import stream
from langevin_uq.systems.schlogl import SchloglSystem, simulate_schlogl


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--method", default="ls")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beta", type=float, default=None)
    p.add_argument("--reduction", default=None, help="the demo's when not given")
    p.add_argument("--modes", default="auto")
    p.add_argument("--gamma0", type=float, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--full", action="store_true")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    quick = not a.full
    system = SchloglSystem(n=128, n_times=26) if quick else SchloglSystem(n=256)
    data = simulate_schlogl(system, stream(a.seed, "demo/data"))
    held_out = simulate_schlogl(eqx.tree_at(lambda s: s.n, system, 512 if quick else 1024),
                                stream(a.seed, "demo/held-out"))  # fmt: skip
    config = schlogl_config("marginal-mixture", quick=quick, seed=a.seed, method=a.method)
    modes = a.modes if a.modes == "auto" else int(a.modes)
    sampler = {"modes": modes}
    if a.gamma0 is not None:
        sampler["gamma0"] = a.gamma0
        if a.gamma0 == 1.0:
            sampler["anneal_epochs"] = 0
    train = {} if a.beta is None else {"beta": a.beta}
    if a.epochs is not None:
        train["epochs"] = a.epochs
    if a.lr is not None:
        train["lr"] = a.lr
    likelihood = {} if a.reduction is None else {"time_reduction": a.reduction}
    config = config.replace(likelihood=likelihood, sampler=sampler, train=train)
    fitted = fit_and_score(data, held_out, config, __import__("pathlib").Path(a.out), a.seed,
                           False)  # fmt: skip
    y = held_out.y[:, :, 0]
    centers = metrics.mixture_summary(y[:, -1], 2, seed=a.seed)["mean"]
    gap = float(centers[1] - centers[0])
    row = final_time_modes(fitted.y_rep[:, 0, -1, 0], centers, gap, y[:, -1])
    meta = json.loads((__import__("pathlib").Path(a.out) / "model.json").read_text())
    fractions = (meta.get("drift") or {}).get("mode_fractions")
    cells = [
        f"{row['low-mode fraction']:.3f}",
        f"{row['low mean']:.1f} / {row['low sd']:.1f}",
        f"{row['high mean']:.1f} / {row['high sd']:.1f}",
        f"{row['W1 final / gap']:.3f}",
    ]
    weighted = "-"
    if a.method == "ls":
        weighted = _weighted_fraction(data, config, fitted, centers, a.seed)
    print(f"| {a.method} | seed {a.seed} | lr {config.train.lr:g} | beta {config.train.beta:g} "
          f"{config.likelihood.time_reduction} | modes {modes} | "
          f"gamma0 {config.sampler.gamma0:g} | " + " | ".join(cells)
          + f" | {np.round(fractions, 3).tolist() if fractions else '-'} | {weighted} | "
          + f"{fitted.seconds:.0f} |",
          flush=True)  # fmt: skip


def _weighted_fraction(data, config, fitted, centers, seed, n=4096, batch=512) -> str:
    """The replicas' low-mode fraction weighted by their path importance weights."""
    problem = problem_for(data, config, (fitted.run.w_mle, {}))
    value = jax.jit(jax.vmap(log_posterior(problem, config.train.beta)))
    post = fitted.run.posterior
    w_t, log_path = jax.jit(path_log_weights, static_argnums=3)(
        post.sampler, post.drift, stream(seed, "bench/path-weights"), n
    )
    u = problem.prior.whiten(w_t)
    log_w, final = [], []
    shift, scale = float(problem.scaler.shift[0]), float(problem.scaler.scale[0])
    final_of = jax.jit(jax.vmap(lambda x: predict_groups(
        problem.partition, problem.partition.join(problem.prior.unwhiten(x), problem.w_d),
        problem.inputs)[0, -1, 0] * scale + shift))  # fmt: skip
    for s in range(0, n, batch):
        x = u[s : s + batch]
        log_w.append(np.asarray(value(x) + 0.5 * jnp.sum(x**2, -1), np.float64))
        final.append(np.asarray(final_of(x), np.float64))
    log_w = np.concatenate(log_w) + np.asarray(log_path, np.float64)
    final = np.concatenate(final)
    ok = np.isfinite(log_w) & np.isfinite(final)
    w = np.where(ok, np.exp(np.where(ok, log_w, -np.inf) - np.max(log_w[ok])), 0.0)
    low = np.argmin(np.abs(np.where(ok, final, 0)[:, None] - centers[None]), axis=1) == 0
    p = np.sum(w * low) / w.sum()
    se = np.sqrt(np.sum(w**2 * (low - p) ** 2)) / w.sum()
    return f"{p:.3f} +- {se:.3f} (ESS {w.sum() ** 2 / np.sum(w**2):.1f})"


if __name__ == "__main__":
    main()
