"""Typed configuration objects that round-trip through YAML.

Every config in SearchGym is a dataclass that inherits `YamlConfig`: `to_dict`, `from_dict`,
`to_yaml`, `from_yaml`, and dotted overrides (`cfg.override(["train.lr=1e-5"])`).
Unknown keys are refused with the list of valid ones, so a typo never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Self

import yaml

from searchgym.io import atomic_write_text


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key and what to do."""


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if value is None:
        return None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return tp.from_dict(value, where=where) if issubclass(tp, YamlConfig) else tp(**value)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        for a in args:
            try:
                return _convert(a, value, where)
            except (ConfigError, TypeError, ValueError):
                continue
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        out = [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return out if origin is list else tuple(out)
    if origin is dict:
        kt, vt = typing.get_args(tp) or (Any, Any)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {k: _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError as e:
            raise ConfigError(f"{where}: {value!r} is not a number") from e
    if tp is int and isinstance(value, str):
        try:
            return int(value)
        except ValueError as e:
            raise ConfigError(f"{where}: {value!r} is not an integer") from e
    if tp is bool and isinstance(value, str):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"{where}: {value!r} is not a boolean")
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__} ({value!r})")
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got bool")
    return value


@dataclasses.dataclass
class YamlConfig:
    """Mixin for dataclass configs: YAML round-trip and validated dotted overrides."""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "") -> Self:
        data = dict(data or {})
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{where or cls.__name__}: unknown key(s) {unknown}; valid keys are {sorted(names)}"
            )
        kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_yaml(cls, path_or_text: str | Path) -> Self:
        p = Path(path_or_text) if isinstance(path_or_text, Path) or "\n" not in path_or_text else None
        try:
            is_file = p is not None and p.is_file()
        except OSError:  # a long YAML string is not a path
            is_file = False
        if is_file:
            try:
                data = yaml.safe_load(p.read_text())
            except yaml.YAMLError as e:
                raise ConfigError(f"{p}: not valid YAML: {e}") from e
            where = str(p)
        else:
            data = yaml.safe_load(str(path_or_text))
            where = cls.__name__
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping at the top level")
        return cls.from_dict(data, where=where)

    def override(self, assignments: list[str]) -> Self:
        """Return a copy with `a.b.c=value` assignments applied (values parsed as YAML scalars)."""
        data = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise ConfigError(f"override {item!r}: expected key=value, e.g. train.learning_rate=1e-5")
            key, raw = item.split("=", 1)
            node = data
            parts = key.strip().split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"override {item!r}: {part!r} is not a section")
                node = node[part]
            # unknown keys are caught by from_dict below (dataclass sections); free-form dict sections accept them
            node[parts[-1]] = yaml.safe_load(raw)
        return type(self).from_dict(data)
