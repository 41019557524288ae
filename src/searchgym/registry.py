"""Registries by name (engines, generators, estimators): `register = registrar(TABLE, "engine")`, then
`@register("bm25s")` on a class or function. Configs pick an entry with a string; a duplicate name is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def registrar(table: dict[str, Any], kind: str) -> Callable[[str], Callable[[T], T]]:
    def register(name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in table:
                raise ValueError(f"{kind} {name!r} is already registered")
            if isinstance(obj, type):
                obj.name = name  # type: ignore[attr-defined]
            table[name] = obj
            return obj

        return deco

    return register
