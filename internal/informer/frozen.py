"""Read-only views of cached objects, so a reconciler cannot corrupt the shared cache by accident.

Views wrap the cached dict lazily (nested dicts and lists are wrapped on access), which costs far
less than the deep copy client-go makes on every cache read. ``thaw`` returns a mutable deep copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import orjson


class FrozenDict(Mapping[str, Any]):
    __slots__ = ("_d",)

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def __getitem__(self, key: str) -> Any:
        return freeze(self._d[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._d == other._d
        return self._d == other

    __hash__ = None  # type: ignore[assignment]  # mutable underneath, like dict

    def __repr__(self) -> str:
        return f"FrozenDict({self._d!r})"


class FrozenList(Sequence[Any]):
    __slots__ = ("_l",)

    def __init__(self, items: list[Any]) -> None:
        self._l = items

    @overload
    def __getitem__(self, i: int) -> Any: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Any]: ...
    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return FrozenList(self._l[i])
        return freeze(self._l[i])

    def __len__(self) -> int:
        return len(self._l)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenList):
            return self._l == other._l
        return self._l == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FrozenList({self._l!r})"


def freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return FrozenDict(v)
    if isinstance(v, list):
        return FrozenList(v)
    return v


def _default(v: Any) -> Any:
    if isinstance(v, FrozenDict):
        return v._d
    if isinstance(v, FrozenList):
        return v._l
    raise TypeError(f"cannot serialise {type(v).__name__}")


def thaw(v: Any) -> Any:
    """A mutable deep copy of a (possibly frozen) JSON value."""
    return orjson.loads(orjson.dumps(v, default=_default))


def raw(v: Any) -> Any:
    """The underlying JSON value of a view (read-only by convention), for serialising without a copy."""
    return _default(v) if isinstance(v, FrozenDict | FrozenList) else v
