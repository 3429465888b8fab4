"""Helpers the demonstrations share: fit, sample and score one configuration; a Markdown table."""

import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..config import Config
from ..data import Trajectories
from ..report import group_scores, predict_per_group, write_report
from ..run import FittedRun, fit, sample_weights
from ..rundir import HISTORY, HISTORY_COLUMNS, read_history, read_metadata
from ..seeding import stream


class Fitted(NamedTuple):
    """One demonstration fit, sampled and scored against the held-out data."""

    run: FittedRun
    w: np.ndarray  # posterior samples of w_S, (M, ns)
    y_rep: np.ndarray  # predictive ensemble per held-out group, (M, G, T, ny)
    scores: dict[str, float]  # `langevin_uq.report.group_scores` summary
    curve: np.ndarray  # W1 over time, (T, ny)
    seconds: float  # wall time of the fit


def fit_and_score(
    data: Trajectories,
    held_out: Trajectories,
    config: Config,
    run_dir: Path,
    seed: int,
    progress: bool,
    resume: bool = False,
) -> Fitted:
    """Fit into ``run_dir``, sample, predict, report.

    A demo's earlier output in ``run_dir`` is replaced, or with ``resume`` continued: a finished
    fit is loaded, an interrupted one goes on from its checkpoint (`langevin_uq.run.fit`), and
    the fit's seconds are then those its history recorded.
    """
    resume = resume and run_dir.exists()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    run = fit(data, config, run_dir=run_dir, resume=resume, progress=progress)
    seconds = recorded_seconds(run_dir) if resume else time.perf_counter() - t0
    n = run.config.sampler.posterior_samples
    w = np.asarray(sample_weights(run, n, stream(seed, "demo/samples")))
    y_rep, members = predict_per_group(run, held_out, w)
    scores, curve = group_scores(y_rep, held_out, members)
    write_report(run_dir, held_out)
    return Fitted(run, w, y_rep, scores, curve, seconds)


def recorded_seconds(run_dir: Path) -> float:
    """The MLE's and the training epochs' seconds as the run directory recorded them."""
    column = HISTORY_COLUMNS.index("seconds")
    epochs = sum(row[column] for row in read_history(run_dir / HISTORY))
    return read_metadata(run_dir)["mle"]["seconds"] + epochs


def markdown_table(first: str, rows: dict[str, dict[str, float]]) -> str:
    """A Markdown table: one row per key of ``rows``, one column per key of its values."""
    columns = list(next(iter(rows.values())))
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (1 + len(columns)) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.4g}" for c in columns) + " |")
    return "\n".join(lines) + "\n"
