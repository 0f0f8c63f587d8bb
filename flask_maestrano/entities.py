"""Connec! entities for a Flask app: :func:`deliver` reads the app's callbacks.

The entity model and the parser live in :mod:`flask_maestrano.connec.entities` (plain
Python); their names stay importable from here.

>>> from flask_maestrano.entities import Entity, deliver, parse_entities  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Flask

from .connec.entities import CONNEC_PROVIDER as CONNEC_PROVIDER
from .connec.entities import Entities as Entities
from .connec.entities import Entity as Entity
from .connec.entities import deliver_to
from .connec.entities import parse_entities as parse_entities
from .presets import Preset
from .state import get_state
from .syncing import apply_notification


def deliver(
    app: Flask,
    preset: Preset,
    group_id: str,
    collection: str,
    entities: Sequence[Entity],
    *,
    source: str,
) -> Sequence[Entity]:
    """Hand one batch to ``app``'s host: :func:`~flask_maestrano.connec.entities.deliver_to`
    with the app's callbacks, the signal sent by ``app``. Returns the entities as delivered.

    >>> deliver(app, preset, "cld-1", "people", entities, source="import")  # doctest: +SKIP
    """
    if source == "notification":
        # mapped collections are applied by the sync engine first (flask_maestrano.syncing)
        dicts = entities.dicts if isinstance(entities, Entities) else [e.data for e in entities]
        apply_notification(app, preset, group_id, collection, dicts)
    callbacks = get_state(app).callbacks
    return deliver_to(callbacks, app, preset, group_id, collection, entities, source=source)
