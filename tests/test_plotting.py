"""Smoke tests of the figures: each writes a non-empty PNG from tiny inputs, degenerate included."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from langevin_uq import plotting
from langevin_uq.errors import DataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def _assert_png(written, path):
    assert written == path
    data = path.read_bytes()
    assert len(data) > 1000
    assert data.startswith(PNG_MAGIC)
    # The atomic writer leaves no temporary file behind.
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_density_over_time_with_fixed_initial_condition(rng, tmp_path):
    t = np.linspace(0.0, 2.0, 8)
    data = 1.0 + (0.5 - 1.0) * np.exp(-np.outer(rng.uniform(0.5, 1.5, 16), t))
    pred = data + 0.01 * rng.normal(size=data.shape) * (t > 0)
    path = tmp_path / "density.png"
    written = plotting.plot_density_over_time(
        t, {"data": data, "Langevin sampler": pred}, path, output_label="x"
    )
    _assert_png(written, path)


def test_density_over_time_all_constant_and_single_sample(tmp_path):
    t = np.arange(3.0)
    panels = {"constant": np.ones((4, 3)), "one draw": np.array([[1.0, 2.0, 3.0]])}
    path = tmp_path / "sub" / "density.png"
    _assert_png(plotting.plot_density_over_time(t, panels, path), path)


def test_density_over_time_refuses_mismatched_times(tmp_path):
    with pytest.raises(DataError, match="panels"):
        plotting.plot_density_over_time(np.arange(3.0), {"a": np.ones((4, 5))}, tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_weight_law_with_reference(rng, tmp_path):
    mean, cov = np.array([-1.0, 2.0]), np.array([[0.04, -0.08], [-0.08, 0.5]])
    reference = multivariate_normal(mean, cov)
    samples = {
        "Langevin sampler": rng.multivariate_normal(mean, cov, size=64),
        "BBVI": rng.multivariate_normal(mean, 2.0 * cov, size=48),
    }
    path = tmp_path / "law.png"
    written = plotting.plot_weight_law(
        samples, path, reference_log_density=reference.logpdf, reference_mean=mean, grid_size=30
    )
    _assert_png(written, path)


def test_weight_law_degenerate_samples(rng, tmp_path):
    samples = {
        "constant w2": np.stack([rng.normal(size=20), np.full(20, 3.0)], axis=1),
        "point mass": np.ones((5, 2)),
        "collinear": np.stack([np.arange(10.0), 2.0 * np.arange(10.0)], axis=1),
    }
    path = tmp_path / "law.png"
    _assert_png(plotting.plot_weight_law(samples, path, names=("a", "b"), grid_size=20), path)


def test_w1_over_time(rng, tmp_path):
    t = np.linspace(0.0, 1.0, 6)
    wide = {"epoch 1": np.r_[0.0, rng.uniform(1.0, 2.0, 5)], "epoch 9": np.full(6, 1e-4)}
    path = tmp_path / "w1.png"
    _assert_png(plotting.plot_w1_over_time(t, wide, path), path)
    many = {f"epoch {e}": rng.uniform(0.1, 0.2, 6) for e in range(12)}
    path = tmp_path / "w1_many" / "w1.png"
    _assert_png(plotting.plot_w1_over_time(t, many, path, ylabel="W1(t)"), path)


def test_history(tmp_path):
    epoch = np.arange(10.0)
    history = {
        "epoch": epoch,
        "loss": 1e3 * np.exp(-epoch),
        "nll": 5.0 - epoch,
        "kl": np.full(10, 2.0),
        "grad_norm": np.linspace(1.0, 0.5, 10),
    }
    path = tmp_path / "history.png"
    _assert_png(plotting.plot_history(history, path), path)
    with pytest.raises(DataError, match="no term"):
        plotting.plot_history({"epoch": epoch}, tmp_path / "empty.png")


def test_predictive_bands(rng, tmp_path):
    t = np.linspace(0.0, 1.0, 5)
    y_pred = rng.normal(size=(30, 5))
    y_pred[:, 0] = 0.0
    path = tmp_path / "bands.png"
    _assert_png(plotting.plot_predictive_bands(t, rng.normal(size=(3, 5)), y_pred, path), path)


def test_mixture_summaries(rng, tmp_path):
    times = np.array([1.0, 5.0])
    values = {"data": rng.normal(size=(50, 2)), "LS": np.zeros((20, 2))}
    summaries = {"data": [{"weight": np.array([0.4, 0.6]), "mean": np.array([-1.0, 1.0]),
                           "sd": np.array([0.5, 0.5])}] * 2}  # fmt: skip
    path = tmp_path / "mix.png"
    _assert_png(plotting.plot_mixture_summaries(values, times, summaries, path), path)
    with pytest.raises(DataError):
        plotting.plot_mixture_summaries({"data": np.zeros((5, 3))}, times, {}, path)


def test_convergence_heat_map_with_a_missing_cell(tmp_path):
    table = np.array([[3.0, 2.0], [1.5, np.nan]])
    path = tmp_path / "conv.png"
    _assert_png(plotting.plot_convergence(table, [16, 32], [25, 50], path), path)
    with pytest.raises(DataError):
        plotting.plot_convergence(table, [16], [25, 50], path)


def test_distance_correlations(rng, tmp_path):
    path = tmp_path / "dcor.png"
    values = {"LS": rng.uniform(0, 0.3, 100), "BBVI": np.full(10, 0.05)}
    _assert_png(plotting.plot_distance_correlations(values, path), path)
