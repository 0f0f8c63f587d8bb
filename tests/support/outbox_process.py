"""A host process killed (SIGKILL) between its commit and the push of that commit, for the
outbox tests.

``python -m tests.support.outbox_process DATABASE_URI PRESETS_JSON NAME`` builds a host app on
the same database as the test's :class:`~tests.support.sync_world.World`, hooks
``sync_on_commit``, adds the company ``NAME`` and commits: the push that follows the commit
kills the process first, the way ``kill -9`` or a recycled worker would.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from flask import Flask

from flask_maestrano import Maestrano, syncing
from flask_maestrano.contrib.sqlalchemy import ModelMapping, SqlAlchemySyncStore, sync_on_commit

from .sync_world import GROUP, Company, db


def die(*_args: Any) -> None:
    print("committed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def main(database_uri: str, presets: str, name: str) -> None:
    app = Flask("outbox_process")
    app.config.update(
        SECRET_KEY="k",
        SQLALCHEMY_DATABASE_URI=database_uri,
        MAESTRANO_PRESETS=json.loads(presets),
        MAESTRANO_DEFAULT_PRESET="sandbox",
    )
    db.init_app(app)
    Maestrano(app)
    with app.app_context():
        fields = {"name": "name"}
        companies = ModelMapping(db.session, Company, "organizations", fields=fields, group="group_id")
        syncing.configure(app, SqlAlchemySyncStore(db.engine), [companies])
        sync_on_commit(app, db.session)
        syncing.push_committed = die  # type: ignore[assignment]
        db.session.add(Company(group_id=GROUP, name=name))
        db.session.commit()
    print("pushed", flush=True)  # never reached


if __name__ == "__main__":
    main(*sys.argv[1:4])
