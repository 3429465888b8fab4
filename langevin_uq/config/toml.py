"""The whole run configuration, `Config`, and its TOML form: reading a file, checking each
table's keys and value types, writing the resolved configuration back."""

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .sections import (
    DataOptions,
    LikelihoodOptions,
    MethodOptions,
    ModelOptions,
    PartitionOptions,
    PriorOptions,
    SamplerOptions,
    TrainOptions,
)


@dataclass(frozen=True)
class Config:
    """The whole run configuration, one typed section per TOML table."""

    data: DataOptions = field(default_factory=DataOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    partition: PartitionOptions = field(default_factory=PartitionOptions)
    prior: PriorOptions = field(default_factory=PriorOptions)
    sampler: SamplerOptions = field(default_factory=SamplerOptions)
    likelihood: LikelihoodOptions = field(default_factory=LikelihoodOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    method: MethodOptions = field(default_factory=MethodOptions)

    def __post_init__(self):
        # What a method can run is declared on its class; refused here, when a config is read,
        # so that the CLI refuses before any fit.
        from ..methods import check

        check(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Config":
        sections = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, table in raw.items():
            if name not in sections:
                raise ConfigError(f"unknown config section [{name}]; known: {', '.join(sections)}")
            if not isinstance(table, dict):
                raise ConfigError(f"config entry {name!r} must be a [{name}] table")
            kwargs[name] = _section(sections[name].default_factory, name, table)
        model, defaults = raw.get("model", {}), dataclasses.asdict(ModelOptions())
        # A resolved config (a run directory's) lists the built-in keys at their defaults.
        own = {k for k in set(model) - {"module", "args", "substeps", "fixed"}
               if model[k] != defaults.get(k)}  # fmt: skip
        if model.get("module") and own:
            raise ConfigError(
                f"model.module sets your own model; the built-in model's keys "
                f"{', '.join('model.' + k for k in sorted(own))} do not apply to it"
            )
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read a TOML config; a relative ``model.module`` file is resolved against the
        config file's folder."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} cannot be read: {err}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
        config = cls.from_dict(raw)
        if config.model.module:
            from ..datamodel import resolve_spec

            module = resolve_spec(config.model.module, path.parent)
            config = config.replace(model={"module": module})
        return config

    def replace(self, **sections: dict[str, Any]) -> "Config":
        """A copy with some keys changed, e.g. ``cfg.replace(train={"seed": 3})``."""
        updated = {}
        for name, changes in sections.items():
            current = dataclasses.asdict(getattr(self, name))
            current.update(changes)
            updated[name] = _section(type(getattr(self, name)), name, current)
        return dataclasses.replace(self, **updated)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        lines = []
        for name, table in self.to_dict().items():
            lines.append(f"[{name}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
            lines.append("")
        return "\n".join(lines)


_TABLE_OR = {("prior", "mean"), ("prior", "scale"), ("partition", "stochastic")}
"""Keys that take a table (or, for ``partition.stochastic``, a list) besides their default's
type."""


def _section(factory, name: str, table: dict[str, Any]):
    known = {f.name: f for f in dataclasses.fields(factory)}
    defaults = factory()
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"unknown config key {name}.{key}; known keys: {', '.join(known)}")
        expected = type(getattr(defaults, key))
        if (name, key) in _TABLE_OR and isinstance(value, dict | list):
            if isinstance(value, list) != (key == "stochastic"):
                raise ConfigError(
                    f"config key {name}.{key} = {value!r} should be "
                    + ("'all' or a list of leaf paths" if key == "stochastic" else "a table")
                )
            continue
        if not _type_ok(value, expected, getattr(defaults, key)):
            raise ConfigError(
                f"config key {name}.{key} = {value!r} should be a finite {expected.__name__}"
                if expected is float
                else f"config key {name}.{key} = {value!r} should be an int of at most {_MAX_INT}"
                if expected is int and isinstance(value, int) and not isinstance(value, bool)
                else f"config key {name}.{key} = {value!r} should be of type {expected.__name__}"
            )
    values = {
        k: (
            float(v)
            if isinstance(getattr(defaults, k), float)
            and not isinstance(v, bool)
            and isinstance(v, int)
            else v
        )
        for k, v in table.items()
    }
    return factory(**values)


_MAX_INT = 2**31 - 1  # sizes and counts become array shapes and int32 loop counters


def _type_ok(value, expected, default) -> bool:
    if isinstance(value, bool) or expected is bool:
        return isinstance(value, bool) and expected is bool
    if expected is int:
        return isinstance(value, int) and abs(value) <= _MAX_INT
    if expected is float:
        return isinstance(value, int | float) and math.isfinite(value)
    if expected is list:
        inner = type(default[0]) if default else object
        return isinstance(value, list) and all(
            isinstance(v, inner) and not isinstance(v, bool) and (inner is not int or v <= _MAX_INT)
            for v in value
        )
    if isinstance(default, str) and default == "auto":  # likelihood.sigma: "auto" or a number
        return isinstance(value, str) or (isinstance(value, int | float) and math.isfinite(value))
    return isinstance(value, expected)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }" if value else "{}"
    return repr(value)


def _toml_key(key: str) -> str:
    bare = key and all(c.isalnum() or c in "_-" for c in key)
    return key if bare else _toml_value(key)
