"""The ``langevin-uq`` command line (INTERFACE.md "Commands").

Thin by design: parse options, call the library, write files. Any `LangevinUQError` (bad data,
bad config, a run directory that does not fit) becomes one plain sentence on stderr and exit
status 2, without a traceback; Ctrl-C becomes exit status 130 (after training saved its
checkpoint, when it was training).
"""

import contextlib
import inspect
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

from . import registry
from .errors import ConfigError, LangevinUQError, SupportWarning, TrainingInterrupted

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Uncertainty quantification of neural-ODE models by Langevin sampling.",
)

_SYSTEM_HELP = " | ".join(registry.names())


def _simulator_options() -> dict[str, tuple[type, str]]:
    """Every simulator option in the registry, in the order its systems list them, with its
    type and help text: an option one system takes names that system and its default, one that
    several take names each one's default."""
    takers: dict[str, list[tuple[registry.System, registry.Option]]] = {}
    for system in registry.SYSTEMS.values():
        for option in system.options:
            takers.setdefault(option.name, []).append((system, option))
    table = {}
    for name, [(system, option), *others] in takers.items():
        if others:
            defaults = "; ".join(f"{s.label}: {o.default}" for s, o in [(system, option), *others])
            table[name] = option.type, f"{option.help} ({defaults})"
        else:
            table[name] = option.type, f"{system.label}: {option.help} [{option.default}]"
    return table


_SIMULATOR_OPTIONS = _simulator_options()


def _with_simulator_options(command):
    """Replace ``command``'s ``**options`` by one ``--option`` per `_SIMULATOR_OPTIONS` entry
    (None when not given), the signature Typer builds the command line from."""
    signature = inspect.signature(command)
    fixed = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                          annotation=Annotated[kind | None, typer.Option(help=text)])
        for name, (kind, text) in _SIMULATOR_OPTIONS.items()
    ]  # fmt: skip
    command.__signature__ = signature.replace(parameters=[*fixed, *extra])
    return command


@app.command()
@_with_simulator_options
def simulate(
    system: Annotated[str, typer.Argument(help=_SYSTEM_HELP)],
    out: Annotated[Path, typer.Option(help="trajectory file to write (.nc or .npz)")],
    n: Annotated[int, typer.Option(help="number of trajectories")] = 1024,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    **options: float | None,
) -> None:
    """Simulate a demonstration system and write its trajectories."""
    from .data import save_trajectories
    from .seeding import stream

    entry = registry.lookup(system, "simulate")
    given = {name: value for name, value in options.items() if value is not None}
    accepted = {option.name for option in entry.options}
    for name in _SIMULATOR_OPTIONS:  # the help's order, whatever the command line's
        if name in given and name not in accepted:
            raise ConfigError(
                f"option --{name.replace('_', '-')} does not apply to system {system!r}"
            )
    data = entry.simulate(n, stream(seed, "simulate"), **given)
    save_trajectories(data, out)
    typer.echo(f"wrote {n} {system} trajectories to {out}")


@app.command()
def fit(
    data: Annotated[Path, typer.Argument(help="trajectory file (.nc or .npz)")],
    out: Annotated[Path, typer.Option(help="run directory to create (or resume)")],
    config: Annotated[
        Path | None, typer.Option(help="TOML config; defaults for absent keys")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="overrides train.seed")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Fit the MLE, then the posterior of [method] kind (the Langevin sampler by default, or
    bbvi-full, bbvi-meanfield, nuts); write the run directory."""
    from .config import Config
    from .data import load_trajectories
    from .run import fit as fit_run

    traj = load_trajectories(data)
    if config is not None:
        cfg = Config.load(config)
    elif resume and (out / "config.toml").exists():
        cfg = Config.load(out / "config.toml")
    else:
        cfg = Config()
    if seed is not None:
        cfg = cfg.replace(train={"seed": seed})
    with _stop_on_interrupt():
        run = fit_run(traj, cfg, run_dir=out, resume=resume, progress=progress)
    if run.diagnostics is not None:
        d = run.diagnostics
        typer.echo(
            f"NUTS: {d['chains']} chains x {d['draws_per_chain']} draws in {d['seconds']:.1f} s; "
            f"R-hat max {d['r_hat_max']:.3f}, ESS min {d['ess_min']:.0f}, "
            f"{d['divergences']} divergences; run directory {out}"
        )
    else:
        typer.echo(f"trained {run.epoch} epochs ({cfg.method.kind}); run directory {out}")


@app.command()
def sample(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by `fit`")],
    out: Annotated[Path, typer.Option(help="samples file to write (.npz)")],
    n: Annotated[int, typer.Option(help="number of posterior samples M")] = 1000,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Draw posterior weight samples: by simulating the learned SDE (ls), from the Gaussian
    guide (bbvi-*) or from the stored chains (nuts)."""
    import numpy as np

    from .checkpoint import save_samples
    from .prediction import run_samples
    from .run import load_run

    if out.suffix != ".npz":
        raise ConfigError(f"--out {out} must end in .npz")
    run = load_run(run_dir)
    t0 = time.perf_counter()
    w = np.asarray(run_samples(run, run_dir, n, seed))
    seconds = time.perf_counter() - t0
    save_samples(out, w, run.partition.names, run.partition.stochastic_mask)
    typer.echo(f"wrote {n} samples of {run.partition.n_weights} weights to {out}")
    typer.echo(f"drew them from {run.posterior.describe()}: {seconds:.2f} s, "
               f"{n / seconds:.0f} draws/s including compilation")  # fmt: skip


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by `fit`")],
    data: Annotated[Path, typer.Option(help="trajectories whose inputs to predict for")],
    out: Annotated[Path, typer.Option(help="prediction file to write (.nc)")],
    n: Annotated[
        int | None, typer.Option(help="draw M fresh samples (default: samples.npz)")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed for fresh samples")] = 0,
    noise: Annotated[
        bool, typer.Option("--noise", help="add the gaussian likelihood's observation noise")
    ] = False,
) -> None:
    """Predict an ensemble, its mean, std and quantiles for new inputs (noise-free outputs;
    with --noise, new observations)."""
    from .data import load_trajectories
    from .prediction import predict_to_file

    if out.suffix != ".nc":
        raise ConfigError(f"--out {out} must end in .nc")
    m = predict_to_file(run_dir, load_trajectories(data), out, n=n, seed=seed, noise=noise)
    typer.echo(f"wrote a {m}-member predictive ensemble to {out}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="run directory written by `fit`")],
    data: Annotated[Path | None, typer.Option(help="held-out trajectories to score")] = None,
    train_data: Annotated[
        Path | None,
        typer.Option(help="the data the run was fitted to: recomputes the KSD of its samples"),
    ] = None,
) -> None:
    """Write figures and a summary table under RUN_DIR/report/."""
    from .data import load_trajectories
    from .report import write_report

    held_out = load_trajectories(data) if data is not None else None
    fitted_to = load_trajectories(train_data) if train_data is not None else None
    summary = write_report(run_dir, held_out, data=fitted_to)
    typer.echo(summary)


@app.command()
def compare(
    data: Annotated[Path, typer.Argument(help="trajectory file (.nc or .npz)")],
    out: Annotated[Path, typer.Option(help="directory for the run directories and the table")],
    methods: Annotated[
        str,
        typer.Option(
            help="comma-separated: ls, ls-gauss-newton (ls from the Gauss-Newton guide), "
            "bbvi-full, bbvi-meanfield, nuts"
        ),
    ] = "ls,bbvi-full",
    config: Annotated[Path | None, typer.Option(help="TOML config shared by all methods")] = None,
    heldout: Annotated[
        Path | None, typer.Option(help="held-out trajectories to score (default: DATA)")
    ] = None,
    n: Annotated[int | None, typer.Option(help="posterior samples per method")] = None,
    seed: Annotated[int | None, typer.Option(help="overrides train.seed")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Fit several methods on the same data, model and likelihood; write one comparison table
    (comparison.md, comparison.csv) with held-out W1, coverage, wall time and, for NUTS, R-hat
    and ESS per second. A method that fails gets a row that says why; the exit status is 2 only
    when every method failed."""
    from .compare import compare_methods, method_config, parse_methods
    from .config import Config
    from .data import load_trajectories

    kinds = parse_methods(methods)
    if n is not None and n < 2:
        raise ConfigError(f"--n must be at least 2, got {n}")
    cfg = Config.load(config) if config is not None else Config()
    if seed is not None:
        cfg = cfg.replace(train={"seed": seed})
    for kind in kinds:  # refuse a combination (e.g. nuts + energy score) before any fit
        method_config(cfg, kind)
    traj = load_trajectories(data)
    held = load_trajectories(heldout) if heldout is not None else None
    if held is not None and held.n_outputs != traj.n_outputs:
        raise ConfigError(f"--heldout has {held.n_outputs} outputs but {data} has {traj.n_outputs}")
    with _stop_on_interrupt():
        compare_methods(traj, cfg, kinds, out, held_out=held, n_samples=n, progress=progress,
                        echo=typer.echo)  # fmt: skip


@app.command()
def demo(
    system: Annotated[str, typer.Argument(help=_SYSTEM_HELP)],
    out: Annotated[Path, typer.Option(help="output directory")] = Path("demo-out"),
    quick: Annotated[bool, typer.Option("--quick", help="small sizes, for a smoke run")] = False,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="continue an interrupted demo in --out: load its finished fits, continue an "
            "interrupted one from its checkpoint",
        ),
    ] = False,
) -> None:
    """Simulate, fit with each likelihood, and report, in one go."""
    run_demo = registry.lookup(system, "demo").load_demo()
    with _stop_on_interrupt():
        run_demo(out, quick=quick, seed=seed, progress=progress, echo=typer.echo, resume=resume)


def main() -> None:
    """Console entry point: run the app, turning library errors into exit status 2."""
    warnings.showwarning = _show_warning
    try:
        app()  # standalone: usage errors print the usage line and exit 2 on their own
    except LangevinUQError as err:
        _fail(str(err))
    except (OSError, UnicodeError) as err:
        _fail(f"{getattr(err, 'filename', None) or 'input'}: {err.strerror or err}"
              if isinstance(err, OSError) else str(err))  # fmt: skip


@contextlib.contextmanager
def _stop_on_interrupt():
    """Ctrl-C: say what was kept and exit 130 (Typer alone would exit 130 silently)."""
    try:
        yield
    except TrainingInterrupted as err:
        _fail(str(err), status=130)
    except KeyboardInterrupt:
        _fail("interrupted", status=130)


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The library's own warnings as one plain line; any other as Python shows it."""
    if issubclass(category, SupportWarning):
        print(f"langevin-uq: warning: {str(message).rstrip('.')}.", file=sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def _fail(message: str, status: int = 2) -> None:
    message = message.rstrip(".")
    kind = "error" if status == 2 else "stopped"
    print(f"langevin-uq: {kind}: {message}.", file=sys.stderr)
    sys.exit(status)
