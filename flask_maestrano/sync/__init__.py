"""The Connec! two-way synchronization engine (plain Python; see :doc:`/sync`).

* :class:`Mapping`: how one Connec! collection maps to the host's records;
* :class:`SyncStore`, :class:`IdMap`, :class:`SyncRun`: what the engine remembers;
* :class:`SyncEngine`: pull, apply, push and a whole run for one company.

The Flask wiring is :mod:`flask_maestrano.syncing`; a SQLAlchemy store and a model-based
mapping are in :mod:`flask_maestrano.contrib.sqlalchemy`.
"""

from .engine import MAX_BATCH, Change, SyncEngine
from .mapping import CONNEC_WINS, LOCAL_WINS, MOST_RECENT, Mapping, dependency_order, payload_hash
from .store import DISABLED, ENQUEUED, ERROR, RUNNING, SUCCESS, IdMap, SyncRun, SyncStore

__all__ = [
    "CONNEC_WINS",
    "DISABLED",
    "ENQUEUED",
    "ERROR",
    "LOCAL_WINS",
    "MAX_BATCH",
    "MOST_RECENT",
    "RUNNING",
    "SUCCESS",
    "Change",
    "IdMap",
    "Mapping",
    "SyncEngine",
    "SyncRun",
    "SyncStore",
    "dependency_order",
    "payload_hash",
]
