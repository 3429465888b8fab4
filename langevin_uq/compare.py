"""Side-by-side comparison of posterior methods on one data set (the baselines of Sec. 4).

Every method fits the same data model, likelihood and prior (only ``[method] kind`` differs), so
differences in the table are differences of the methods. Per method the table gives the wall
time of the fit, held-out scores of its predictive ensemble (W1 per time, Eq. 27, as mean and
max over time; 50/90 % band coverage; energy score), NUTS's R-hat, ESS per second and
divergences, the KSD of its draws against the posterior they target (ratio to exact draws,
U-statistic z and Stein dispersion, `langevin_uq.sample_quality.run_diagnostics`; for density
likelihoods only),
and the weights' statistics: against an analytic law for two weights, and against NUTS (when it
ran) for any number of weights.

A method that fails (its fit diverges, its draws or predictions are not finite, or any other of
the library's errors) gets a row that says so with the one-line reason, and the other methods'
rows stand; only when every method fails is the comparison an error.
"""

import csv
import io
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax.random as jr
import numpy as np

from . import metrics
from ._atomic import write_text_atomic
from .config import METHODS, Config
from .data import Trajectories
from .errors import ComparisonFailedError, ConfigError, LangevinUQError, TrainingDivergedError
from .report import group_scores, predict_per_group
from .run import FittedRun, fit, sample_weights
from .sample_quality import run_diagnostics
from .seeding import stream

KSD_SAMPLES = 512
"""Draws per method for the KSD columns (its cost grows like their square)."""

SD_RATIO_BAND = (0.8, 1.25)
"""Per-weight sd ratios against NUTS inside this band count as agreeing (issue 3, item 2)."""


VARIANTS = {
    "ls-gauss-newton": {
        "method": {"kind": "ls"},
        "sampler": {"drift_init": "gauss-newton"},
        "train": {"epochs": 0},
    }
}
"""Rows that run a method with other settings than the shared config's: the Langevin sampler
on the Gauss-Newton guide alone (untrained: the guide solves the data model at every step, so
an epoch of training on it costs as many model solves as the sampler has steps; drawing is what
it is for), beside the trained default start, in one table."""
NAMES = (*METHODS, *VARIANTS)


def method_config(config: Config, name: str) -> Config:
    """The config of one row of the comparison: ``config`` with the method (or variant)
    ``name``; refuses a combination the method does not take (e.g. NUTS and an energy score)."""
    return config.replace(**VARIANTS.get(name, {"method": {"kind": name}}))


def parse_methods(text: str) -> tuple[str, ...]:
    """``"ls,bbvi-full"`` -> ``("ls", "bbvi-full")``, refusing unknown or repeated names."""
    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    if not methods:
        raise ConfigError("--methods names no method; use a comma-separated list of " +
                          ", ".join(NAMES))  # fmt: skip
    for m in methods:
        if m not in NAMES:
            raise ConfigError(f"unknown method {m!r} in --methods; use {', '.join(NAMES)}")
    if len(set(methods)) != len(methods):
        raise ConfigError(f"--methods names a method twice: {text}")
    return methods


def agreement_with_reference(
    w: np.ndarray, w_ref: np.ndarray, y_rep: np.ndarray, y_ref: np.ndarray, spread: np.ndarray
) -> dict[str, float]:
    """How closely a method's posterior matches a reference posterior (NUTS).

    Args:
        w, w_ref: stochastic-weight draws ``(M, ns)`` of the method and the reference.
        y_rep, y_ref: their predictive ensembles for the same groups, ``(M, G, T, ny)``.
        spread: the data's standard deviation per group, time and output ``(G, T, ny)``.

    Returns:
        the fraction of weights whose sd ratio lies in `SD_RATIO_BAND`, the median and the
        extreme sd ratios, the largest mean difference in reference sds, the largest
        difference between the two correlation matrices (NaN for one weight), and the largest
        predictive W1 between the two ensembles relative to the data's spread over groups,
        times and outputs (times where the data have no spread are skipped; NaN when the data
        have no spread anywhere, e.g. a single trajectory).
    """
    ratio = w.std(axis=0, ddof=1) / w_ref.std(axis=0, ddof=1)
    shift = np.abs(w.mean(axis=0) - w_ref.mean(axis=0)) / w_ref.std(axis=0, ddof=1)
    lo, hi = SD_RATIO_BAND
    w1 = np.stack([metrics.w1_over_time(y_ref[:, g], y_rep[:, g]) for g in range(y_rep.shape[1])])
    scale = np.max(spread)
    informative = spread > 1e-6 * max(scale, 1e-30)
    relative = np.where(informative, w1 / np.where(informative, spread, 1.0), 0.0)
    corr_diff = np.nan
    if w.shape[1] > 1:
        corr_diff = float(np.max(np.abs(np.corrcoef(w.T) - np.corrcoef(w_ref.T))))
    return {
        "sd ratio in band": float(np.mean((ratio >= lo) & (ratio <= hi))),
        "sd ratio median": float(np.median(ratio)),
        "sd ratio min": float(np.min(ratio)),
        "sd ratio max": float(np.max(ratio)),
        "mean shift max (ref sd)": float(np.max(shift)),
        "corr diff max": corr_diff,
        "predictive W1 / spread max": float(np.max(relative)) if informative.any() else np.nan,
    }


def compare_methods(
    data: Trajectories,
    config: Config,
    methods: Sequence[str],
    out: str | Path,
    *,
    held_out: Trajectories | None = None,
    reference: Mapping[str, object] | None = None,
    n_samples: int | None = None,
    progress: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Fit each method on ``data`` and write ``comparison.md`` and ``comparison.csv``.

    Args:
        data: the training trajectories.
        config: the configuration shared by all methods (``method.kind`` is replaced).
        methods: names from `langevin_uq.config.METHODS` or `VARIANTS`.
        out: directory that receives one run directory per method and the tables; a method's
            earlier run directory there is replaced.
        held_out: trajectories to score the predictive ensembles on (default: ``data``, which
            the table then calls in-sample).
        reference: analytic law of two stochastic weights (``mean``, ``sd``, ``corr``), e.g.
            `langevin_uq.systems.ou.OUWeightLaw`'s.
        n_samples: posterior draws per method (default ``sampler.posterior_samples``).
        progress: show each fit's progress bar.
        echo: where to print the progress lines and the final tables.

    Returns:
        per method: the summary numbers of its row, its draws of ``w_S`` (``"w_s"``), its
        predictive ensemble on the held-out groups (``"y_rep"``) and its KSD diagnostics
        (``"ksd"``, `langevin_uq.sample_quality.run_diagnostics` of ``min(n, KSD_SAMPLES)``
        fresh draws), and ``"failed"``: ``None``, or for a method that failed the one-line
        reason (its row then holds only its ``wall seconds``, and nothing else is there).

    Raises:
        ComparisonFailedError: every method failed (the tables, which say why, are written).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scored = held_out if held_out is not None else data
    n = n_samples or config.sampler.posterior_samples
    results: dict[str, dict] = {}
    for i, kind in enumerate(methods):
        run_dir = out / kind
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t0 = time.perf_counter()
        try:
            results[kind] = _score(data, method_config(config, kind), run_dir, scored, n, i,
                                   t0, progress)  # fmt: skip
        except LangevinUQError as err:
            reason = " ".join(str(err).split())
            results[kind] = {"row": {"wall seconds": time.perf_counter() - t0}, "failed": reason}
            echo(f"{kind}: failed: {reason}")
            continue
        echo(f"{kind}: {results[kind]['row']['wall seconds']:.1f} s")
    text = _tables(results, scored, reference, held_out is None)
    write_text_atomic(out / "comparison.md", text)
    write_text_atomic(out / "comparison.csv", _csv(results))
    echo(text)
    if all(r["failed"] for r in results.values()):
        raise ComparisonFailedError(
            "every method failed: "
            + "; ".join(f"{k}: {r['failed']}" for k, r in results.items())
            + f" (see {out / 'comparison.md'})"
        )
    return results


def _score(data: Trajectories, config: Config, run_dir: Path, scored: Trajectories, n: int,
           i: int, t0: float, progress: bool) -> dict:  # fmt: skip
    """Fit one method (the ``i``-th) and score its draws: its entry of `compare_methods`."""
    run = fit(data, config, run_dir=run_dir, progress=progress)
    seconds = time.perf_counter() - t0
    key = jr.fold_in(stream(config.train.seed, "compare/samples"), i)
    w = np.asarray(sample_weights(run, n, key))
    if not np.all(np.isfinite(w)):
        bad = int(np.sum(~np.all(np.isfinite(w), axis=1)))
        raise TrainingDivergedError(f"{bad} of {w.shape[0]} posterior draws are NaN or infinite")
    y_rep, members = predict_per_group(run, scored, w)
    scores, curve = group_scores(y_rep, scored, members)
    ksd = run_diagnostics(run, data, jr.fold_in(stream(config.train.seed, "compare/ksd"), i),
                          min(n, KSD_SAMPLES))  # fmt: skip
    row = {"wall seconds": seconds, **scores, **_nuts_columns(run), **_ksd_columns(ksd)}
    mask = np.asarray(run.partition.stochastic_mask)
    return {"row": row, "w_s": w[:, mask], "w": w, "mask": mask, "names": run.partition.names,
            "y_rep": y_rep, "w1_curve": curve, "members": members, "ksd": ksd,
            "failed": None}  # fmt: skip


def _nuts_columns(run: FittedRun) -> dict[str, float]:
    d = run.diagnostics
    if d is None:
        return {"ESS/s (min)": np.nan, "R-hat max": np.nan, "divergences": np.nan}
    return {"ESS/s (min)": d["ess_per_second_min"], "R-hat max": d["r_hat_max"],
            "divergences": float(d["divergences"])}  # fmt: skip


def _ksd_columns(ksd: dict) -> dict[str, float]:
    if ksd["ksd"] is None:
        return {"KSD ratio": np.nan, "KSD z": np.nan, "Stein dispersion": np.nan}
    # Run directories written before the dispersion existed have none.
    return {"KSD ratio": ksd["ratio"], "KSD z": ksd["z"],
            "Stein dispersion": ksd.get("dispersion", np.nan)}  # fmt: skip


def _tables(results, scored: Trajectories, reference, in_sample: bool) -> str:
    ok = {k: r for k, r in results.items() if not r["failed"]}
    columns = _columns(results)
    where = "in-sample (no held-out data given)" if in_sample else "held-out"
    lines = [f"# Method comparison ({where} scores)", "", *_header([*columns, "status"])]
    for kind, res in results.items():
        values = (res["row"].get(c, np.nan) for c in columns)
        cells = ["-" if np.isnan(v) else f"{v:.4g}" for v in values]
        status = f"failed: {res['failed']}" if res["failed"] else "ok"
        lines.append(f"| {kind} | " + " | ".join([*cells, status.replace("|", "\\|")]) + " |")
    lines += ["", "KSD of each method's draws against its posterior:", ""]
    for kind, res in results.items():
        if res["failed"]:
            lines.append(f"- {kind}: failed: {res['failed']}")
            continue
        ksd = res["ksd"]
        said = ksd["why"] if ksd["ksd"] is None else ksd["verdict"] or "no disagreement detected"
        grid = (ksd.get("discretisation") or {}).get("verdict")
        lines.append(f"- {kind}: {said}" + (f"; {grid}" if grid else ""))
    if not ok:
        return "\n".join(lines) + "\n"
    n_s = int(ok["nuts"]["mask"].sum()) if "nuts" in ok else next(iter(ok.values()))["w_s"].shape[1]
    if all(r["w_s"].shape[1] == 2 for r in ok.values()):
        table = metrics.parameter_table({k: r["w_s"] for k, r in ok.items()}, reference)
        lines += ["", "Stochastic weights:", "", "```", metrics.format_parameter_table(table),
                  "```"]  # fmt: skip
    if "nuts" in ok and len(ok) > 1:
        ref = ok["nuts"]
        members = ref["members"]
        spread = np.stack([scored.y[g].std(axis=0) for g in members])
        rows, held = {}, []
        for k, r in ok.items():
            if k == "nuts":
                continue
            common = r["mask"] & ref["mask"]
            rows[k] = agreement_with_reference(r["w"][:, common], ref["w"][:, common],
                                               r["y_rep"], ref["y_rep"], spread)  # fmt: skip
            missing = ref["mask"] & ~r["mask"]
            if missing.any():
                names = [n for n, m in zip(r["names"], missing, strict=True) if m]
                held.append(f"- {k}: on the {int(common.sum())} weights both sample; "
                            f"{', '.join(names)} held at the MLE")  # fmt: skip
        cols = list(next(iter(rows.values())))
        lines += ["", f"Against NUTS ({n_s} stochastic weights):", "", *_header(cols)]
        lines += [f"| {k} | " + " | ".join(f"{v:.4g}" for v in r.values()) + " |"
                  for k, r in rows.items()]  # fmt: skip
        lines += ["", *held] if held else []
    return "\n".join(lines) + "\n"


def _columns(results) -> list[str]:
    """The number columns of the table: a scored method's (a failed one has only its time)."""
    rows = [r["row"] for r in results.values() if not r["failed"]]
    return list(rows[0] if rows else next(iter(results.values()))["row"])


def _header(columns) -> list[str]:
    return ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]


def _csv(results) -> str:
    columns = _columns(results)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["method", *columns, "status"])
    for kind, res in results.items():
        status = f"failed: {res['failed']}" if res["failed"] else "ok"
        numbers = (f"{res['row'].get(c, np.nan):.9g}" for c in columns)
        writer.writerow([kind, *numbers, status])
    return text.getvalue()
