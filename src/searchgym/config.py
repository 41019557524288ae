"""Typed configuration objects that round-trip through YAML.

Every config in SearchGym is a dataclass that inherits `YamlConfig`: `to_dict`, `from_dict`,
`to_yaml`, `from_yaml` (a file), `from_yaml_text`, and dotted overrides (`cfg.override(["train.lr=1e-5"])` or
`cfg.override({"train.lr": 1e-5})`).
Unknown keys are refused with the list of valid ones, so a typo never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Self

import yaml

from searchgym.errors import SearchGymError
from searchgym.io import atomic_write_text


class ConfigError(SearchGymError, ValueError):
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
    def from_yaml(cls, path: str | Path) -> Self:
        """Load a YAML file; a missing, unreadable or malformed file raises ConfigError naming it."""
        if isinstance(path, str) and "\n" in path:  # YAML text passed the old way; use from_yaml_text
            warnings.warn(
                "from_yaml(text) is deprecated: call from_yaml_text", DeprecationWarning, stacklevel=2
            )
            return cls.from_yaml_text(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found" + (" (it is a directory)" if p.is_dir() else ""))
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {p} cannot be read ({e})") from e
        return cls.from_yaml_text(text, where=str(p))

    @classmethod
    def from_yaml_text(cls, text: str, where: str = "") -> Self:
        """Parse YAML text (`where` names its origin in errors: a file path, or the class name)."""
        where = where or cls.__name__
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{where}: not valid YAML: {_yaml_problem(e)}") from e
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping of keys to values at the top level")
        return cls.from_dict(data, where=where)

    def override(self, assignments: list[str] | dict[str, Any]) -> Self:
        """Return a copy with dotted assignments applied: `["a.b.c=value", ...]` (values parsed as YAML
        scalars) or `{"a.b.c": value}` (values used as given)."""
        if isinstance(assignments, dict):
            items = [(str(k), v, f"{k}={v!r}") for k, v in assignments.items()]
        else:
            items = [_parse_assignment(item) for item in assignments]
        data = self.to_dict()
        for key, value, item in items:
            node = data
            parts = key.strip().split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"override {item!r}: {part!r} is not a section")
                node = node[part]
            # unknown keys are caught by from_dict below (dataclass sections); free-form dict sections accept them
            node[parts[-1]] = value
        return type(self).from_dict(data)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error on one line: its problem and where (PyYAML's own text spans several lines)."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        mark = e.problem_mark
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        return f"{e.problem}{at}"
    return " ".join(str(e).split())


def _parse_assignment(item: str) -> tuple[str, Any, str]:
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value, e.g. train.learning_rate=1e-5")
    key, raw = item.split("=", 1)
    try:
        return key, yaml.safe_load(raw), item
    except yaml.YAMLError as e:
        raise ConfigError(
            f"override {item!r}: the value of {key.strip()} is not valid YAML ({_yaml_problem(e)}); give a "
            "number, true/false, a list like [1, 2], or quoted text"
        ) from e
