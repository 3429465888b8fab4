"""The method comparison: its table, its agreement measures and its command."""

import csv

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_TOML

from langevin_uq.compare import agreement_with_reference, parse_methods
from langevin_uq.errors import ConfigError


def test_parse_methods():
    assert parse_methods("ls, bbvi-full,nuts") == ("ls", "bbvi-full", "nuts")
    for bad in ("", "ls,mcmc", "ls,ls"):
        with pytest.raises(ConfigError):
            parse_methods(bad)


def test_agreement_of_a_posterior_with_itself_and_with_a_wider_one():
    rng = np.random.default_rng(0)
    w_ref = rng.normal(size=(4000, 10))
    y_ref = rng.normal(size=(4000, 1, 5, 1))
    spread = np.ones((1, 5, 1))
    same = agreement_with_reference(w_ref, w_ref, y_ref, y_ref, spread)
    assert same["sd ratio in band"] == 1.0 and same["sd ratio median"] == pytest.approx(1.0)
    assert same["mean shift max (ref sd)"] == 0.0 and same["predictive W1 / spread max"] == 0.0
    # Twice as wide in the first 3 weights: exactly those leave the band. A predictive ensemble
    # shifted by 0.5 data sds is 0.5 spreads away in W1.
    wide = w_ref * np.r_[[2.0] * 3, [1.0] * 7]
    out = agreement_with_reference(wide, w_ref, y_ref + 0.5, y_ref, spread)
    assert out["sd ratio in band"] == pytest.approx(0.7)
    assert out["sd ratio max"] == pytest.approx(2.0)
    assert out["predictive W1 / spread max"] == pytest.approx(0.5, rel=1e-6)


@pytest.fixture(scope="module")
def compared(tmp_path_factory, data_file, cli):
    d = tmp_path_factory.mktemp("compare")
    config = d / "c.toml"
    config.write_text(TINY_TOML + '\n[likelihood]\nkind = "gaussian"\n\n[method]\nparticles = 8\n'
                      "warmup = 30\nsamples = 20\nchains = 2\n")  # fmt: skip
    methods = ("--methods", "ls,bbvi-meanfield,nuts")
    code, out, err = cli("compare", data_file, "--config", config, "--out", d / "out",
                         *methods, "--n", 20, "--no-progress")  # fmt: skip
    assert code == 0, err
    return d / "out", out


def test_compare_writes_one_table(compared):
    out, stdout = compared
    text = (out / "comparison.md").read_text()
    assert text.strip() in stdout
    assert "in-sample" in text and "Against NUTS (2 stochastic weights)" in text
    rows = [line.split(",") for line in (out / "comparison.csv").read_text().splitlines()]
    assert rows[0][:3] == ["method", "wall seconds", "W1 mean over time"]
    assert [r[0] for r in rows[1:]] == ["ls", "bbvi-meanfield", "nuts"]
    nuts = dict(zip(rows[0], rows[3], strict=True))
    assert float(nuts["ESS/s (min)"]) > 0 and float(nuts["divergences"]) >= 0
    # A Gaussian likelihood has a density: every method gets its KSD against it.
    assert rows[0][-4:] == ["KSD ratio", "KSD z", "Stein dispersion", "status"]
    assert [r[-1] for r in rows[1:]] == ["ok"] * 3
    for row in rows[1:]:
        cells = dict(zip(rows[0], row, strict=True))
        assert float(cells["KSD ratio"]) > 0 and np.isfinite(float(cells["KSD z"])), row
        assert float(cells["Stein dispersion"]) > 0, row
    assert "KSD of each method's draws against its posterior:" in text
    for kind in ("ls", "bbvi-meanfield", "nuts"):
        assert f"\n- {kind}: " in text
    for kind in ("ls", "bbvi-meanfield", "nuts"):
        assert (out / kind / "samples.npz").is_file()


def test_a_method_that_fails_gets_a_row_that_says_why(tmp_path, data_file, cli, monkeypatch):
    """A fit that diverges and draws that are NaN fail their own rows only; the others stand,
    and the exit status is 0. When every method fails, it is 2 (and the table says why)."""
    import langevin_uq.compare as compare
    from langevin_uq.errors import TrainingDivergedError

    fitted = []  # (kind, run) of each fit, in order

    def fit(data, config, **kwargs):
        kind = config.method.kind
        if kind == "ls":
            raise TrainingDivergedError("the loss became NaN or infinite at epoch 3:\nlower it")
        # bbvi-meanfield: the bbvi-full run again (one fit less), with NaN draws below
        run = fitted[-1][1] if kind == "bbvi-meanfield" else real_fit(data, config, **kwargs)
        fitted.append((kind, run))
        return run

    def sample_weights(run, n, key):
        w = real_sample_weights(run, n, key)
        return w.at[1].set(jnp.nan) if fitted[-1][0] == "bbvi-meanfield" else w

    real_fit, real_sample_weights = compare.fit, compare.sample_weights
    monkeypatch.setattr(compare, "fit", fit)
    monkeypatch.setattr(compare, "sample_weights", sample_weights)
    config = tmp_path / "c.toml"
    config.write_text(TINY_TOML + "\n[method]\nparticles = 8\n")
    out = tmp_path / "out"
    args = ("--config", config, "--out", out, "--n", 20, "--no-progress")
    code, stdout, err = cli("compare", data_file, "--methods", "ls,bbvi-full,bbvi-meanfield",
                            *args)  # fmt: skip
    assert code == 0, err
    rows = list(csv.reader((out / "comparison.csv").read_text().splitlines()))
    cells = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert list(cells) == ["ls", "bbvi-full", "bbvi-meanfield"]
    failed = {k: c["status"] for k, c in cells.items() if k != "bbvi-full"}
    assert failed == {
        "ls": "failed: the loss became NaN or infinite at epoch 3: lower it",
        "bbvi-meanfield": "failed: 1 of 20 posterior draws are NaN or infinite",
    }
    ok = cells["bbvi-full"]
    assert ok["status"] == "ok" and np.isfinite(float(ok["W1 mean over time"]))
    for kind in ("ls", "bbvi-meanfield"):
        assert np.isnan(float(cells[kind]["W1 mean over time"])), kind
    text = (out / "comparison.md").read_text()
    assert "| ls | " in text and "| failed: the loss became NaN" in text
    assert "\n- bbvi-meanfield: failed: 1 of 20 posterior draws" in text
    assert "\n- bbvi-full: " in text and "ls: failed" in stdout
    # Only failures: exit status 2, with every reason, and the table still written.
    code, _, err = cli("compare", data_file, "--methods", "ls", "--out", tmp_path / "o2",
                       *args[:2], *args[4:])  # fmt: skip
    assert code == 2 and "every method failed: ls: the loss became NaN" in err
    assert "failed: the loss became NaN" in (tmp_path / "o2" / "comparison.md").read_text()


@pytest.mark.parametrize(
    ("args", "mention"),
    [(("--methods", "ls,mcmc"), "mcmc"), (("--methods", ""), "method"), (("--n", 1), "--n")],
)
def test_compare_refuses(tmp_path, data_file, cli, args, mention):
    from test_cli import assert_refused

    assert_refused(cli("compare", data_file, "--out", tmp_path / "o", *args), mention)
    assert not (tmp_path / "o").exists()


def test_compare_refuses_nuts_with_the_energy_score_before_fitting(tmp_path, data_file, cli):
    from test_cli import assert_refused

    config = tmp_path / "c.toml"
    config.write_text('[likelihood]\nkind = "energy-score"\n')
    args = ("--config", config, "--methods", "ls,nuts", "--out", tmp_path / "o")
    assert_refused(cli("compare", data_file, *args), "energy score")
    assert not (tmp_path / "o").exists()


def test_the_gauss_newton_row_is_an_untrained_langevin_run_on_the_guide():
    from langevin_uq.compare import method_config, parse_methods
    from langevin_uq.config import Config
    from langevin_uq.errors import ConfigError

    assert parse_methods("ls, ls-gauss-newton,nuts") == ("ls", "ls-gauss-newton", "nuts")
    config = method_config(Config(), "ls-gauss-newton")
    assert config.method.kind == "ls" and config.sampler.drift_init == "gauss-newton"
    assert config.train.epochs == 0
    with pytest.raises(ConfigError, match="gauss-newton"):
        method_config(Config().replace(likelihood={"kind": "energy-score"}), "ls-gauss-newton")
