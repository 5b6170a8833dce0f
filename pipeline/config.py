"""Screening configuration: every threshold and score weight, from one TOML file.

The shipped ``default_config.toml`` (inside the package) holds the defaults
with the guideline each one comes from, and it is also the schema: a user
file may set any key it has, and nothing else::

    >>> config = load_config(None)              # the shipped defaults
    >>> config.max_inr, config.min_platelets, config.window_days
    (1.5, 50.0, 30)
    >>> len(config_hash(config))
    64

A user file overrides only the keys it sets (``max_inr = 2.0`` leaves every
other value at its default; ``[weights] oedema = 40`` leaves the other
weights alone).
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from numbers import Real
from pathlib import Path
from typing import Any

__all__ = ["Config", "load_config", "config_hash"]

DEFAULT_CONFIG_FILE = "default_config.toml"


@cache
def _default_data() -> dict[str, Any]:
    text = resources.files("pipeline").joinpath(DEFAULT_CONFIG_FILE).read_text(encoding="utf-8")
    return tomllib.loads(text)


def _default_weights() -> dict[str, float]:
    return {name: float(value) for name, value in _default_data()["weights"].items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Config:
    """Thresholds and score weights of the screening stage.

    ``weights`` may name a subset of the score weights; the others take the
    shipped defaults. Values are checked on construction, so an invalid
    ``Config`` cannot exist.
    """

    max_inr: float = 1.5
    min_platelets: float = 50.0
    window_days: int = 30
    weights: dict[str, float] = field(default_factory=_default_weights)

    def __post_init__(self) -> None:
        if not _is_number(self.max_inr) or self.max_inr <= 0:
            raise ValueError(f"max_inr must be a positive number, got {self.max_inr!r}")
        if not _is_number(self.min_platelets) or self.min_platelets < 0:
            raise ValueError(f"min_platelets must be a number >= 0, got {self.min_platelets!r}")
        if (not isinstance(self.window_days, int) or isinstance(self.window_days, bool)
                or self.window_days < 0):
            raise ValueError(f"window_days must be a whole number of days >= 0, "
                             f"got {self.window_days!r}")
        defaults = _default_weights()
        weights = dict(defaults)
        for name, value in dict(self.weights).items():
            if name not in defaults:
                raise ValueError(f"unknown config key 'weights.{name}' "
                                 f"(known: {', '.join(defaults)})")
            if not _is_number(value):
                raise ValueError(f"weights.{name} must be a number, got {value!r}")
            weights[name] = float(value)
        # Frozen: set the normalised values once, here. The weights dict is a
        # private copy, so mutating the argument later changes nothing.
        object.__setattr__(self, "max_inr", float(self.max_inr))
        object.__setattr__(self, "min_platelets", float(self.min_platelets))
        object.__setattr__(self, "weights", weights)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready content (weights sorted by name)."""
        return {
            "max_inr": self.max_inr,
            "min_platelets": self.min_platelets,
            "window_days": self.window_days,
            "weights": {name: self.weights[name] for name in sorted(self.weights)},
        }


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None


def _check_keys(user: dict[str, Any], defaults: dict[str, Any], where: str) -> None:
    for key, value in user.items():
        if key not in defaults:
            raise ValueError(f"{where}: unknown config key '{key}' "
                             f"(known: {', '.join(defaults)})")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"{where}: '{key}' must be a table ([{key}])")
            for name in value:
                if name not in defaults[key]:
                    raise ValueError(f"{where}: unknown config key '{key}.{name}' "
                                     f"(known: {', '.join(defaults[key])})")
        elif isinstance(value, dict):
            raise ValueError(f"{where}: '{key}' must be a value, not a table")


def load_config(path: str | Path | None = None) -> Config:
    """Read a TOML config; ``None`` gives the shipped defaults.

    Keys the file does not set keep their default. An unknown key, a table
    where a value belongs, a value of the wrong type or invalid TOML raises
    ``ValueError`` with a one-line message naming the file and the key. A
    missing file raises ``FileNotFoundError``.
    """
    defaults = _default_data()
    data = {key: (dict(value) if isinstance(value, dict) else value)
            for key, value in defaults.items()}
    where = DEFAULT_CONFIG_FILE
    if path is not None:
        where = str(path)
        user = _read_toml(Path(path))
        _check_keys(user, defaults, where)
        for key, value in user.items():
            if isinstance(value, dict):
                data[key].update(value)
            else:
                data[key] = value
    try:
        return Config(**data)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def config_hash(config: Config) -> str:
    """sha256 of the canonical content (sorted JSON), not of the file bytes.

    Two files that differ only in comments or key order hash the same; any
    changed value changes the hash.
    """
    canonical = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
