"""The demonstration systems: one entry each, naming its simulator and its demonstration.

The command line reads this table and nothing else: ``langevin-uq simulate`` offers every
option of every entry, refuses one the chosen system does not take, and calls its simulator;
``langevin-uq demo`` calls its demonstration. Adding a system, or a demonstration of one, is one
entry in `SYSTEMS`. An entry without a simulator or demonstration is a system the contract
names (INTERFACE.md "Commands") that is not available yet.

Entries import nothing heavy: a simulator imports its system when called, and a demonstration
is named as ``"module:function"`` and imported by `System.load_demo`.
"""

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:  # the command line imports this module: nothing heavy at run time
    from ._types import PRNGKeyArray
    from .data import Trajectories

__all__ = ["SYSTEMS", "Option", "System", "lookup", "names"]


@dataclass(frozen=True)
class Option:
    """A ``langevin-uq simulate`` option a system's simulator takes.

    Attributes
    ----------
    name : str
        The simulator's keyword; the command-line flag is ``--name`` with ``-`` for ``_``.
    help : str
        What the option sets, without its default.
    default : str
        The default as the help text shows it; the simulator applies the default itself when
        the option is not given.
    type : type
        ``float`` or ``int``: the type the command line parses the value as.
    """

    name: str
    help: str
    default: str
    type: type = float

    @property
    def flag(self) -> str:
        """The command-line flag, ``--name`` with ``-`` for ``_``."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class System:
    """One demonstration system.

    Attributes
    ----------
    name : str
        The ``SYSTEM`` argument of ``langevin-uq simulate`` and ``langevin-uq demo``.
    label : str
        The name the help text gives it.
    simulate : callable or None
        ``simulate(n, key, **options) -> Trajectories``: ``n`` trajectories from the random key
        ``key``, with the given ones of ``options`` (the rest at their defaults); raises
        `ConfigError` for a value it cannot take. None: not available yet.
    options : tuple of Option
        The options ``simulate`` takes, in the order the help text lists them.
    demo : str or None
        The demonstration as ``"module:function"``, a function
        ``(out, *, quick, seed, progress, echo, resume)``. None: no demonstration yet.
    """

    name: str
    label: str
    simulate: Callable[..., Any] | None = None
    options: tuple[Option, ...] = ()
    demo: str | None = None

    def load_demo(self) -> Callable[..., Any]:
        """Import and return the demonstration function."""
        if self.demo is None:
            raise ConfigError(f"system {self.name!r} has no demonstration")
        module, _, function = self.demo.partition(":")
        return getattr(importlib.import_module(module), function)


def _grid(x0: str, n_times: str, t_end: str) -> tuple[Option, ...]:
    """The initial state and the observation times, which every simulator so far takes."""
    return (
        Option("x0", "initial state shared by all trajectories", x0),
        Option("n_times", "number of observation times", n_times, int),
        Option("t_end", "last observation time, first is 0", t_end),
    )


def _simulate_ou(
    n: int, key: "PRNGKeyArray", *, noise_sd: float = 0.0, **options: float
) -> "Trajectories":
    """`langevin_uq.systems.ou.simulate_ou` from command-line options."""
    from .systems.ou import OUSystem, simulate_ou

    if noise_sd < 0:
        raise ConfigError(f"--noise-sd must be >= 0, got {noise_sd}")
    return simulate_ou(OUSystem(n=n, **options), key, noise_sd=noise_sd)


def _simulate_schlogl(n: int, key: "PRNGKeyArray", **options: float) -> "Trajectories":
    """`langevin_uq.systems.schlogl.simulate_schlogl` from command-line options."""
    from .systems.schlogl import SchloglSystem, simulate_schlogl

    if "x0" in options:
        x0 = options["x0"]
        if not math.isfinite(x0) or x0 != int(x0) or x0 < 0:
            raise ConfigError(f"--x0 must be a whole copy number >= 0, got {x0}")
        options["x0"] = int(x0)
    return simulate_schlogl(SchloglSystem(n=n, **options), key)


SYSTEMS: dict[str, System] = {
    system.name: system
    for system in (
        System(
            "ou",
            "OU",
            simulate=_simulate_ou,
            options=(
                *_grid(x0="0", n_times="50", t_end="5"),
                Option("theta_mean", "mean of the rate theta", "1"),
                Option("theta_sd", "sd of theta", "0.15"),
                Option("mu_mean", "mean of the level mu", "1"),
                Option("mu_sd", "sd of mu", "0.15"),
                Option("noise_sd", "sd of observation noise", "0"),
            ),
            demo="langevin_uq.demos.ou:run_ou_demo",
        ),
        System(
            "schlogl",
            "Schloegl",
            simulate=_simulate_schlogl,
            options=(
                *_grid(x0="copy number X(0), 250", n_times="51", t_end="10"),
                Option("k1", "rate of A + 2X -> 3X", "3e-7"),
                Option("k2", "rate of 3X -> A + 2X", "1e-4"),
                Option("k3", "rate of B -> X", "1e-3"),
                Option("k4", "rate of X -> B", "3.5"),
                Option("a", "copy number of A", "1e5"),
                Option("b", "copy number of B", "2e5"),
            ),
            demo="langevin_uq.demos.schlogl:run_schlogl_demo",
        ),
        System("hyperelastic", "hyperelastic"),
        System("viscoelastic", "viscoelastic"),
    )
}
"""Every system the contract names, in the order the command line lists them."""


def names(what: str | None = None) -> tuple[str, ...]:
    """The names of all systems, or of those with a ``"simulate"`` or ``"demo"``."""
    return tuple(name for name, system in SYSTEMS.items() if what is None or getattr(system, what))


def lookup(name: str, what: str) -> System:
    """The system ``name``, which must have a ``what`` (``"simulate"`` or ``"demo"``).

    Raises
    ------
    ConfigError
        If no system has that name, or this one has no ``what`` yet.
    """
    if name not in SYSTEMS:
        raise ConfigError(f"unknown system {name!r}; use one of {', '.join(names())}")
    available = names(what)
    if name not in available:
        raise ConfigError(
            f"system {name!r} is not available yet here; available: {', '.join(available)}"
        )
    return SYSTEMS[name]
