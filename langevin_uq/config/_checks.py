"""Value checks shared by the config sections; each raises a `ConfigError` naming the key."""

import math

from ..errors import ConfigError


def _table(name: str, table: dict, *, positive: bool) -> None:
    """Refuse a prior table whose keys are not leaf paths or whose values are not finite
    numbers (positive ones for ``positive``) or nested lists of them."""

    def numbers(v) -> bool:
        if isinstance(v, list):
            return bool(v) and all(numbers(e) for e in v)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        return ok and (v > 0 or not positive)

    for key, value in table.items():
        if not key:
            raise ConfigError(f"{name} has an empty key; keys are leaf paths such as 'theta'")
        if not numbers(value):
            kind = "positive numbers" if positive else "finite numbers"
            raise ConfigError(
                f"{name}.{key} = {value!r} should be a number or a (nested) list of {kind}"
            )


def _choice(name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} = {value!r}; use one of {', '.join(map(repr, allowed))}")


def _at_least(section: str, options, least: int, *names: str) -> None:
    """Refuse any of the ``names`` of ``options`` below ``least``."""
    for name in names:
        value = getattr(options, name)
        if value < least:
            raise ConfigError(f"{section}.{name} must be at least {least}, got {value}")


def _non_negative(section: str, options, *names: str, note: str = "") -> None:
    """Refuse any of the ``names`` of ``options`` below 0; ``note`` says what 0 means."""
    for name in names:
        value = getattr(options, name)
        if value < 0:
            raise ConfigError(f"{section}.{name} must be >= 0{note}, got {value}")


def _positive(section: str, options, *names: str) -> None:
    """Refuse any of the ``names`` of ``options`` that is not > 0."""
    for name in names:
        value = getattr(options, name)
        if not value > 0:
            raise ConfigError(f"{section}.{name} must be positive, got {value}")


def _positive_ints(name: str, values) -> None:
    if any(not isinstance(v, int) or v < 1 for v in values):
        raise ConfigError(f"{name} must be a list of positive integers, got {values!r}")
