"""The host's callbacks: required behaviour with one implementation each.

:class:`~flask_maestrano.Maestrano` fills a :class:`Callbacks` through its decorators
(``@maestrano.find_or_create_user``...); the views and the import read its typed fields.

>>> callbacks = Callbacks()
>>> callbacks.missing("find_or_create_group", "link_membership")
['find_or_create_group', 'link_membership']
>>> _ = callbacks.register("find_or_create_group", lambda group, preset: (group, False))
>>> callbacks.missing("find_or_create_group", "link_membership")
['link_membership']
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

log = logging.getLogger("flask_maestrano")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(eq=False)
class Callbacks:
    """One optional callable per callback; ``None`` until the host registers it."""

    #: ``fn(group_id, preset)``: the platform cancelled a group
    on_group_cancelled: Callable[..., Any] | None = None
    #: ``fn(group_id, user_id, preset)``: a member left a group
    on_member_removed: Callable[..., Any] | None = None
    #: ``fn(preset, group_id, collection, entities, source)``: Connec! entities arrived
    on_entities: Callable[..., Any] | None = None
    #: ``fn(preset, collection, entity) -> host object or None``
    entity_lookup: Callable[..., Any] | None = None
    #: ``fn(group, preset) -> (host_group, created)``
    find_or_create_group: Callable[..., Any] | None = None
    #: ``fn(user, host_group, preset) -> (host_user, created)``
    find_or_create_user: Callable[..., Any] | None = None
    #: ``fn(host_user, host_group, membership, preset) -> None``
    link_membership: Callable[..., Any] | None = None
    #: ``fn(account_id, link, preset) -> bool``
    link_account: Callable[..., Any] | None = None

    def register(self, name: str, fn: F) -> F:
        """Set callback ``name`` to ``fn`` (a warning when it replaces another one)."""
        if name not in _NAMES:
            raise AttributeError(f"no callback named {name!r}")
        current = getattr(self, name)
        if current is not None and current is not fn:
            log.warning("Maestrano: %s callback replaced", name)
        setattr(self, name, fn)
        return fn

    def missing(self, *names: str) -> list[str]:
        """Which of ``names`` the host has not registered."""
        return [name for name in names if getattr(self, name) is None]


_NAMES = frozenset(f.name for f in fields(Callbacks))
