"""Issue 17, item 2: the weight posterior's own mode masses on the Schloegl data.

The demo's data, model and prior (`langevin_uq.demos.schlogl_config("marginal-mixture")`, the
quick size unless ``--full``; prior N(w_MLE, I) in standardised units from the single MLE of all
data), the paper's likelihood (marginal mixture, Eq. 21 corrected). For each ``beta`` and
``time_reduction``: the basins of `langevin_uq.modes.find_basins` (per-mode MLE -> MAP ->
Gauss-Newton Laplace), their Laplace fractions, and an importance-sampling estimate of each
basin's mass with the two Laplace Gaussians (equal weights) as the proposal, and (with
``--prior-draws``) with the prior itself as the proposal, which also gives each basin's
final-time mean and sd under the posterior; a draw's basin is the data mode whose final-time
mean is nearer its trajectory's final value. The Monte Carlo
standard error is the delta method's for a self-normalised ratio; ESS = (sum w)^2 / sum w^2.

    .venv/bin/python bench/schlogl_modes.py [seed] [--draws N] [--betas 0.01,1] [--prior-draws N]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _problem import problem_for

from langevin_uq.demos import schlogl_config
from langevin_uq.modes import find_basins, laplace_fractions, log_posterior
from langevin_uq.prepare import relabel_groups
from langevin_uq.problem import predict_groups
from langevin_uq.seeding import stream
from langevin_uq.systems.schlogl import SchloglSystem, simulate_schlogl


def schlogl_problem(seed: int, reduction: str, quick: bool = True, mle=None):
    """The demo's data and `Problem` with the paper's likelihood and ``reduction``."""
    system = SchloglSystem(n=128, n_times=26) if quick else SchloglSystem(n=256)
    data = relabel_groups(simulate_schlogl(system, stream(seed, "demo/data")))
    config = schlogl_config("marginal-mixture", quick=quick, seed=seed).replace(
        likelihood={"time_reduction": reduction}
    )
    return config, problem_for(data, config, mle)


def _final_value(problem):
    """``u (B, ns) -> X at the final time`` in copy numbers (one group, one output)."""
    shift, scale = float(problem.scaler.shift[0]), float(problem.scaler.scale[0])
    partition, prior, w_d, inputs = problem.partition, problem.prior, problem.w_d, problem.inputs

    def one(u):
        w = partition.join(prior.unwhiten(u), w_d)
        return predict_groups(partition, w, inputs)[0, -1, 0] * scale + shift

    return jax.jit(jax.vmap(one))


def _weighted_rows(log_w, final, basin, n_basins):
    """Self-normalised basin masses, their delta-method se, ESS, and per-basin final mean/sd."""
    w = np.exp(log_w - log_w.max())
    total = w.sum()
    masses = np.array([w[basin == k].sum() / total for k in range(n_basins)])
    se = np.array([np.sqrt(np.sum(w**2 * ((basin == k) - masses[k]) ** 2)) / total
                   for k in range(n_basins)])  # fmt: skip
    stats = []
    for k in range(n_basins):
        wk = w * (basin == k)
        m = np.sum(wk * final) / max(wk.sum(), 1e-300)
        stats.append((m, np.sqrt(np.sum(wk * (final - m) ** 2) / max(wk.sum(), 1e-300))))
    return masses, se, total**2 / np.sum(w**2), stats


def prior_importance(problem, beta: float, draws: int, key, batch: int = 512):
    """Importance sampling with the prior N(0, I) as the proposal: the weights are
    ``exp(-data term / beta)``, unbiased for the basin masses whatever the basins' shapes (useful
    where the data inform the weights weakly: ``beta = 1`` with "mean")."""
    value = jax.jit(jax.vmap(log_posterior(problem, beta)))
    final_of = _final_value(problem)
    ns = problem.partition.n_stochastic
    u = np.asarray(jax.random.normal(key, (draws, ns)), np.float64)
    log_w, final = [], []
    for s in range(0, draws, batch):
        x = jnp.asarray(u[s : s + batch], problem.dtype)
        log_w.append(np.asarray(value(x), np.float64) + 0.5 * np.sum(u[s : s + batch] ** 2, 1))
        final.append(np.asarray(final_of(x), np.float64))
    log_w, final = np.concatenate(log_w), np.concatenate(final)
    log_w = np.where(np.isfinite(log_w) & np.isfinite(final), log_w, -np.inf)
    final = np.where(np.isfinite(final), final, 0.0)
    return _weighted_rows(log_w, final, _basin_of(problem, final), 2)


def _basin_of(problem, final):
    """The data mode whose final-time mean (copy numbers) is nearer each final value."""
    shift, scale = float(problem.scaler.shift[0]), float(problem.scaler.scale[0])
    centres = np.sort(np.asarray(problem.likelihood.mean, np.float64)[0, :, -1, 0]) * scale + shift
    return np.argmin(np.abs(final[:, None] - centres[None]), axis=1)


def importance_masses(problem, basins, beta: float, draws: int, key, batch: int = 512):
    """Self-normalised importance estimate of each basin's mass, its standard error and ESS."""
    value = jax.jit(jax.vmap(log_posterior(problem, beta)))
    ns = basins[0].map_u.size
    chol, root, logdet, centres = [], [], [], []
    for b in basins:
        lam, vec = np.linalg.eigh(np.eye(ns) + b.factor.T @ b.factor)
        chol.append(vec / np.sqrt(lam))  # covariance factor: (I + Lambda)^-1 = C C^T
        root.append(vec * np.sqrt(lam))  # |(u - m) R|^2 is the Mahalanobis distance
        logdet.append(np.sum(np.log(lam)))
        centres.append(b.map_u)
    k_pick, k_z = jax.random.split(key)
    pick = np.asarray(jax.random.randint(k_pick, (draws,), 0, len(basins)))
    z = np.asarray(jax.random.normal(k_z, (draws, ns)), np.float64)
    u = np.stack([centres[p] + chol[p] @ z[i] for i, p in enumerate(pick)])
    log_q = []
    for r, ld, m in zip(root, logdet, centres, strict=True):
        d = (u - m) @ r
        log_q.append(-0.5 * np.sum(d**2, axis=1) + 0.5 * ld)
    log_q = np.logaddexp.reduce(np.stack(log_q), axis=0) - np.log(len(basins))
    dtype = problem.dtype
    log_p, final = [], []
    predict = _final_value(problem)
    for s in range(0, draws, batch):
        x = jnp.asarray(u[s : s + batch], dtype)
        log_p.append(np.asarray(value(x), np.float64))
        final.append(np.asarray(predict(x), np.float64))
    log_p, final = np.concatenate(log_p), np.concatenate(final)
    basin = _basin_of(problem, np.where(np.isfinite(final), final, 0.0))
    log_w = np.where(np.isfinite(log_p), log_p - log_q, -np.inf)
    masses, se, ess, _ = _weighted_rows(log_w, np.where(np.isfinite(final), final, 0.0), basin,
                                        len(basins))  # fmt: skip
    drawn_low = np.mean(basin[pick == 0] == 0), np.mean(basin[pick == 1] == 0)
    return masses, se, ess, drawn_low


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("seed", type=int, nargs="?", default=0)
    parser.add_argument("--draws", type=int, default=4096)
    parser.add_argument("--betas", default="0.01,0.1,1")
    parser.add_argument("--reductions", default="sum,mean")
    parser.add_argument("--prior-draws", type=int, default=0)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    mle = None
    print("| beta | time reduction | MAP final X (low, high) | MAP log post (low, high) | "
          "Laplace log det (low, high) | Laplace low fraction | Laplace-IS low fraction +- se "
          "(ESS) | low-basin draws in low (from low, from high) | prior-IS low fraction +- se "
          "(ESS) | prior-IS final X mean / sd (low; high) | seconds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for reduction in args.reductions.split(","):
        config, problem = schlogl_problem(args.seed, reduction, not args.full, mle)
        mle = (problem.w_mle, problem.mle_info)  # one MLE of all data for every row
        for beta in map(float, args.betas.split(",")):
            t0 = time.perf_counter()
            basins = find_basins(problem, beta, config.sampler.max_rank)
            laplace = laplace_fractions(basins)
            masses, se, ess, drawn = importance_masses(
                problem, basins, beta, args.draws, stream(args.seed, "bench/modes-is")
            )
            finals = np.asarray(_final_value(problem)(jnp.asarray(
                np.stack([b.map_u for b in basins]), problem.dtype)))  # fmt: skip
            if args.prior_draws:
                pm, pse, pess, stats = prior_importance(
                    problem, beta, args.prior_draws, stream(args.seed, "bench/modes-prior-is")
                )
                (m0, s0), (m1, s1) = stats
                prior_row = (f"{pm[0]:.3g} +- {pse[0]:.2g} ({pess:.0f}) | {m0:.1f} / {s0:.1f}; "
                             f"{m1:.1f} / {s1:.1f}")  # fmt: skip
            else:
                prior_row = "- | -"
            print(f"| {beta:g} | {reduction} | {finals[0]:.1f}, {finals[1]:.1f} | "
                  f"{basins[0].log_post:.1f}, {basins[1].log_post:.1f}"
                  f" | {basins[0].log_det:.1f}, {basins[1].log_det:.1f} | {laplace[0]:.3g} | "
                  f"{masses[0]:.3g} +- {se[0]:.2g} ({ess:.1f}) | {drawn[0]:.2f}, {drawn[1]:.2f} "
                  f"| {prior_row} | {time.perf_counter() - t0:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
