"""The Schloegl demonstration (Sec. 4.1, METHOD section 11): Figs. 5-7 and the mode table of
the bistable chemical system, with the convergence study over replicas and steps."""

from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import numpy as np

from .. import metrics, plotting
from .._atomic import write_text_atomic
from .._types import Float
from ..config import Config
from ..data import save_trajectories
from ..seeding import stream
from ..systems.schlogl import SchloglSystem, simulate_schlogl
from ._common import fit_and_score, markdown_table

SCHLOGL_GRID = ((16, 32, 64, 128, 256), (25, 50, 100, 200))
"""Replicas x Euler-Maruyama steps of the convergence study (the paper's Fig. 6)."""
SCHLOGL_QUICK_GRID = ((16, 32, 64), (25, 50))


def schlogl_config(
    kind: str = "energy-score",
    *,
    quick: bool = False,
    seed: int = 0,
    method: str = "ls",
    replicas: int | None = None,
    steps: int | None = None,
) -> Config:
    """The Schloegl demonstration's configuration (Sec. 4.1, METHOD section 11).

    The paper's model: a scalar NODE 1 -> 16 -> 16 -> 1 tanh (321 weights, 4 Heun sub-steps per
    observation interval) on standardised copy numbers, a drift MLP with two hidden layers of 101
    tanh units, a broad prior N(w_MLE, I) in the standardised units, and gamma annealed from 2
    to 1 over the first 3/8 of the epochs, then 1. The pseudo-time span is 1 whatever the number
    of steps, so the convergence study changes the resolution and not the span; the last step
    is at most 1e-4 but large enough that the first, ``1 - (final / 1) ** (1 / (steps - 1))``,
    stays at most about 0.15 (from 25 steps on), where explicit Euler-Maruyama is stable for the
    initial pull of gain 11.

    ``replicas`` and ``steps`` default to 128 and 100 (64 and 50 when ``quick``). At 128 x 100
    the energy-score fit gives the low mode's final-time sd 1.6-2.0x the data's and the high
    mode's 1.07-1.51x, final-time W1 0.025-0.028 of the gap (seeds 0 and 1,
    ``docs/demo-schlogl/``).

    The energy score is the per-time one (``likelihood.marginal``). The SSA's trajectories
    fluctuate about their mode faster than any NODE trajectory can, and the whole-trajectory
    score then fits the spread of the trajectories' time averages, not their spread at one time:
    in the high mode of seed 0's data, time averages over t >= 5 have sd 27 copies where the
    final values have 44; the whole-trajectory fit gave 23 and the per-time one 37. In the low
    mode, whose fluctuations are slow, the two spreads agree (17 and 17).

    Two more choices are ours (issue 5 note): the KL weight ``beta = 0.01`` (0.05 with the
    per-time energy score), because against the N(w_MLE, I) prior the path KL (about 3e4 nats
    for 321 weights) otherwise outweighs the data term (about 400) and spreads the replicas
    until the modes smear (measured: final-time W1 0.36 of the mode gap at beta = 1, 0.05 at
    0.01); with the per-time score, beta 0.2 narrowed the high mode to 27 copies and 0.05 gave
    37 (data 45).

    With the paper's likelihood (``"marginal-mixture"``, Eq. 21 corrected) the demo takes
    ``beta = 1`` and ``time_reduction = "mean"``: only there does the weight posterior have the
    paper's two comparable modes (low-mode mass 0.63 and 0.67 on seeds 0 and 1, by importance
    sampling from the prior). With ``beta = 0.01`` and ``"sum"`` it puts all but about e^-1400
    of its mass in the narrow low mode (`bench/schlogl_modes.py`,
    ``docs/demo-schlogl/modes.md``). The sampler's default ``sampler.modes = "auto"`` keeps one
    stratum of replicas per basin with those masses (`langevin_uq.mixture_tilt`).

    Every method trains at the default ``train.lr = 1e-2``. The demo used to set 1e-3 for the
    Langevin sampler (a choice for its earlier, dense drift): with the present drift the
    quick energy-score fit's loss then stayed flat over 300 epochs (1971 -> 1962) and its
    draws prior-wide (final-time mode sds 220 and 254 copies, W1 0.35 of the gap); at 1e-2,
    72 and 125 copies and 0.10.
    """
    epochs = 300 if quick else 800
    mixture = kind == "marginal-mixture"
    if replicas is None:
        replicas = 64 if quick else 128
    if steps is None:
        steps = 50 if quick else 100
    return Config.from_dict({
        "data": {"scaling": "standardize", "validation_fraction": 0.0},
        "model": {"R_hidden": [16, 16], "R_activation": "tanh", "substeps": 4},
        "prior": {"mean": "mle", "scale": 1.0},
        "likelihood": {"kind": kind, "modes": 2, "marginal": kind == "energy-score",
                       "time_reduction": "mean" if mixture else "sum"},
        "sampler": {"replicas": replicas, "steps": steps, "dtau": 4.0 / steps,
                    "drift_hidden": [101, 101],
                    "gamma0": 2.0, "anneal_epochs": 3 * epochs // 8,
                    "posterior_samples": 512 if quick else 2048},
        "train": {"epochs": epochs,
                  "beta": 1.0 if mixture else 0.05 if kind == "energy-score" else 0.01,
                  "mle_epochs": 1000 if quick else 2000, "seed": seed,
                  "checkpoint_every": 500},
        "method": {"kind": method, "particles": replicas},
    })  # fmt: skip


def final_time_modes(
    y_final: Float[np.ndarray, " n"],
    centers: Float[np.ndarray, " 2"],
    gap: float,
    data_final: Float[np.ndarray, " m"],
) -> dict[str, float]:
    """Mode fractions, per-mode mean and sd, and final-time W1 relative to the mode gap.

    Each value of ``y_final`` is assigned to the nearer of the data's two mode ``centers``
    (sorted); W1 is against the data's final values ``data_final``, divided by ``gap``.
    """
    nearest = metrics.nearest_mode(y_final, centers)
    row = {"low-mode fraction": float(np.mean(nearest == 0))}
    for k, name in enumerate(("low", "high")):
        member = y_final[nearest == k]
        row[f"{name} mean"] = float(member.mean()) if member.size else float("nan")
        row[f"{name} sd"] = float(member.std()) if member.size > 1 else float("nan")
    row["W1 final / gap"] = metrics.wasserstein1(y_final, data_final) / gap
    return row


def plot_fig5(
    t: Float[np.ndarray, " T"], panels: dict[str, Float[np.ndarray, "M T"]], out: Path, seed: int
) -> None:
    """The paper's Fig. 5 under ``out``: ``density_over_time.png`` (the density of X over time,
    one panel per source) and ``mixture_summaries.png`` (two-component mixture summaries of X at
    four times); ``panels`` maps a source's name to its trajectories (the data first)."""
    plotting.plot_density_over_time(t, panels, out / "density_over_time.png",
                                    output_label="X", n_trajectories=12)  # fmt: skip
    picks = np.unique(np.linspace(0, t.size - 1, 5).round().astype(int)[1:])
    cuts = {name: y[:, picks] for name, y in panels.items()}
    summaries = {name: [metrics.mixture_summary(y[:, k], 2, seed=seed) for k in range(picks.size)]
                 for name, y in cuts.items()}  # fmt: skip
    plotting.plot_mixture_summaries(cuts, t[picks], summaries, out / "mixture_summaries.png",
                                    output_label="X")  # fmt: skip


def run_schlogl_demo(
    out: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    system: SchloglSystem | None = None,
    grid: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    resume: bool = False,
) -> dict[str, dict]:
    """The Schloegl demonstration (Sec. 4.1): Figs. 5-7 and the mode table.

    Simulates training and held-out data with the exact SSA, fits the Langevin sampler (energy
    score) and mean-field BBVI on the same likelihood (and, in the full run, the paper's
    two-mode marginal mixture with both), then runs the convergence study over ``grid``
    (replicas, steps); the cell of the LS fit's own size reuses that fit, which a separate fit
    with the same seed reproduces exactly. Writes under ``out``: ``data.nc``, ``heldout.nc``,
    one run directory per fit, ``density_over_time.png`` and ``mixture_summaries.png``
    (Fig. 5), ``convergence.png`` (Fig. 6), ``distance_correlation.png`` (Fig. 7) and
    ``schlogl_table.md`` with the final-time modes, the scores, the convergence table and the
    median distance correlations. Returns the per-fit rows and the convergence table.

    With ``resume``, fits already in ``out`` (from an interrupted demo with the same seed and
    sizes) are loaded or continued instead of fitted again.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if system is None:
        system = SchloglSystem(n=128, n_times=26) if quick else SchloglSystem(n=256)
    grid = grid or (SCHLOGL_QUICK_GRID if quick else SCHLOGL_GRID)
    data = simulate_schlogl(system, stream(seed, "demo/data"))
    held_out = simulate_schlogl(
        eqx.tree_at(lambda s: s.n, system, 512 if quick else 1024), stream(seed, "demo/held-out")
    )
    save_trajectories(data, out / "data.nc")
    save_trajectories(held_out, out / "heldout.nc")
    t, y_data = held_out.t[0], held_out.y[:, :, 0]
    data_modes = metrics.mixture_summary(y_data[:, -1], 2, seed=seed)
    centers = data_modes["mean"]
    gap = float(centers[1] - centers[0])
    rows = {"data": {**final_time_modes(y_data[:, -1], centers, gap, y_data[:, -1]),
                     "W1 mean over time": 0.0, "fit seconds": 0.0}}  # fmt: skip
    panels, samples, cells = {"data": y_data}, {}, {}
    fits = [("ls", "energy-score"), ("bbvi-meanfield", "energy-score")]
    if not quick:
        fits += [("ls", "marginal-mixture"), ("bbvi-meanfield", "marginal-mixture")]
    for method, kind in fits:
        name = f"{'LS' if method == 'ls' else 'MF-BBVI'} {kind}"
        config = schlogl_config(kind, quick=quick, seed=seed, method=method)
        run_dir = out / f"{method}-{kind}"
        fitted = fit_and_score(data, held_out, config, run_dir, seed, progress, resume)
        pred = fitted.y_rep[:, 0, :, 0]
        panels[name], samples[name] = pred, fitted.w
        rows[name] = {**final_time_modes(pred[:, -1], centers, gap, y_data[:, -1]),
                      "W1 mean over time": fitted.scores["W1 mean over time"],
                      "fit seconds": fitted.seconds}  # fmt: skip
        if (method, kind) == ("ls", "energy-score"):  # the convergence study's cell of this size
            cells[config.sampler.replicas, config.sampler.steps] = rows[name]["W1 mean over time"]
            per_time = config.likelihood.marginal
        fraction = rows[name]["low-mode fraction"]
        echo(f"{name}: fitted in {fitted.seconds:.1f} s, low-mode fraction {fraction:.3f} "
             f"(data {rows['data']['low-mode fraction']:.3f})")  # fmt: skip

    plot_fig5(t, panels, out, seed)

    convergence = np.full((len(grid[0]), len(grid[1])), np.nan)
    for i, replicas in enumerate(grid[0]):
        for j, steps in enumerate(grid[1]):
            if (replicas, steps) not in cells:
                config = schlogl_config(quick=quick, seed=seed, replicas=replicas, steps=steps)
                cell = out / "convergence" / f"R{replicas}-S{steps}"
                fitted = fit_and_score(data, held_out, config, cell, seed, progress, resume)
                cells[replicas, steps] = fitted.scores["W1 mean over time"]
            convergence[i, j] = cells[replicas, steps]
            echo(f"convergence: {replicas} replicas x {steps} steps: W1 {convergence[i, j]:.3g}")
    plotting.plot_convergence(convergence, list(grid[0]), list(grid[1]),
                              out / "convergence.png", value_label="W1 mean over time")  # fmt: skip

    # A random 100 of the weights (4950 pairs) give the histogram's shape; all 51 360 pairs of
    # 321 weights take about 2 ms each with 2048 samples, 10 minutes for the five sets.
    rng = np.random.default_rng(seed)
    ls_samples = samples[next(iter(samples))]
    cols = np.sort(rng.permutation(ls_samples.shape[1])[:100])
    pairs = np.triu_indices(cols.size, 1)
    dcors = {name: metrics.distance_correlation_matrix(w[:, cols])[pairs]
             for name, w in samples.items()}  # fmt: skip
    # The V-statistic is biased upwards (about 0.07 for 512 independent draws): the LS weights
    # with each column shuffled on its own show the floor that "independent" reads as.
    shuffled = np.stack([rng.permutation(c) for c in ls_samples[:, cols].T], axis=1)
    dcors["independent (shuffled LS)"] = metrics.distance_correlation_matrix(shuffled)[pairs]
    plotting.plot_distance_correlations(dcors, out / "distance_correlation.png")

    grid_rows = {f"{r} replicas": {f"{s} steps": convergence[i, j] for j, s in enumerate(grid[1])}
                 for i, r in enumerate(grid[0])}  # fmt: skip
    median = {name: {"median": float(np.median(v)), "90 %": float(np.quantile(v, 0.9))}
              for name, v in dcors.items()}  # fmt: skip
    report = (
        f"Final time t = {t[-1]:g}: modes by nearest data-mode mean ({centers[0]:.1f}, "
        f"{centers[1]:.1f}; gap {gap:.1f}); W1 in copy numbers.\n\n"
        + markdown_table("source", rows)
        + f"\nEnergy score: {'per time' if per_time else 'whole trajectories'} "
        + f"(likelihood.marginal = {str(per_time).lower()}).\n"
        + "\nConvergence (Fig. 6): W1 mean over time, energy-score LS\n\n"
        + markdown_table("", grid_rows)
        + "\nPairwise distance correlation of sampled weights (Fig. 7)\n\n"
        + markdown_table("method", median)
        + "\nDistance correlation does not change under a shift and scaling of each weight, and"
        + " mean-field draws are such a map of one standard-normal draw per weight: the"
        + " mean-field rows are that draw's independence level.\n"
    )
    write_text_atomic(out / "schlogl_table.md", report)
    echo(report)
    return {"rows": rows, "convergence": convergence, "distance_correlation": median}
