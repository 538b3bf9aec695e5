"""Config dataclasses from a YAML section plus `key=value` overrides; unknown keys are errors.

    config = load_config(RetrieverTrainConfig, "configs/mini.yaml", "retriever", ["epochs=3"])
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from videosearch.errors import ConfigError

T = TypeVar("T")


def build_config(cls: type[T], values: dict[str, Any], where: str = "") -> T:
    """Instantiate dataclass `cls` from a dict, recursing into dataclass fields; tuples from lists."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or cls.__name__} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where or cls.__name__}; known keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = build_config(kind, value, f"{where}.{name}" if where else name)  # type: ignore[type-var]
        elif typing.get_origin(kind) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set `a.b=value` entries (value parsed as YAML) in a nested dict, returning a new dict."""
    result = yaml.safe_load(yaml.safe_dump(values)) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. epochs=3 or video_tower.layers=1)")
        node = result
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return result


def load_config(cls: type[T], path: str | Path | None = None, section: str | None = None,
                overrides: list[str] | None = None, **values: Any) -> T:
    """`cls` from a YAML file's `section`, then `values` (CLI options that were given), then overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.exists():
            raise ConfigError(f"config file {file} does not exist")
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file} is not valid YAML: {exc}") from None
        data = loaded.get(section, {}) if section else loaded
    data.update({k: v for k, v in values.items() if v is not None})
    return build_config(cls, apply_overrides(data, overrides or []), section or "")


def given_paths(**paths: Path | None) -> dict[str, str]:
    """The path options of a command that were given, as config values."""
    return {key: str(value) for key, value in paths.items() if value is not None}


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML next to an output."""
    Path(path).write_text(yaml.safe_dump(_plain(dataclasses.asdict(config)), sort_keys=False))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
