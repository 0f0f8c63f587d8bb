"""One object per preset, built on first use: the per-app pools of HTTP sessions and SAML settings.

A :class:`PerPreset` is made with its lock when the app's state is built in ``init_app``, so
nothing is created lazily but the objects themselves (a preset no request names costs nothing).

>>> built = []
>>> names = PerPreset(lambda preset: built.append(preset.name) or preset.name.upper())
>>> class Named:
...     name = "production"
>>> names.get(Named()), names.get(Named()), built
('PRODUCTION', 'PRODUCTION', ['production'])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Named(Protocol):
    """Anything with a preset ``name`` (a :class:`~flask_maestrano.presets.Preset`)."""

    @property
    def name(self) -> str: ...


P = TypeVar("P", bound=Named)


class PerPreset(Generic[P, T]):
    """``build(preset)`` called once per preset name; thread-safe, lock-free once built."""

    def __init__(self, build: Callable[[P], T]) -> None:
        self._build = build
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()

    def get(self, preset: P) -> T:
        """The object of ``preset``, built by the first caller."""
        try:
            return self._items[preset.name]
        except KeyError:
            with self._lock:
                if preset.name not in self._items:
                    self._items[preset.name] = self._build(preset)
                return self._items[preset.name]

    def __iter__(self) -> Iterator[T]:
        with self._lock:
            return iter(list(self._items.values()))

    def clear(self) -> list[T]:
        """Forget every object; returns them (for the caller to close)."""
        with self._lock:
            items = list(self._items.values())
            self._items.clear()
        return items
