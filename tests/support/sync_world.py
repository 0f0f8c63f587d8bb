"""A host app with mapped models, the sandbox and a counted wire, for the sync tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from flask_maestrano import Maestrano, syncing
from flask_maestrano.contrib.sqlalchemy import ModelMapping, SqlAlchemySyncStore
from flask_maestrano.sandbox import create_app, preset_for
from flask_maestrano.sandbox.core import database
from flask_maestrano.sandbox.entities import all_entities, find_entity, render, update_entity
from tests.support.presets import preset_data
from tests.support.servers import free_port

db = SQLAlchemy()
GROUP = "cld-1"


class Company(db.Model):  # type: ignore[misc,name-defined]
    __tablename__ = "sync_company"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[str] = mapped_column(String(50))
    name: Mapped[str | None] = mapped_column(String(255))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class Contact(db.Model):  # type: ignore[misc,name-defined]
    __tablename__ = "sync_contact"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[str] = mapped_column(String(50))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(255))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("sync_company.id"))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Invoice(db.Model):  # type: ignore[misc,name-defined]
    __tablename__ = "sync_invoice"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[str] = mapped_column(String(50))
    number: Mapped[str | None] = mapped_column(String(50))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("sync_company.id"))
    #: the invoice's lines as Connec! has them, with local item ids (``World(lines=True)``)
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class Item(db.Model):  # type: ignore[misc,name-defined]
    __tablename__ = "sync_item"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[str] = mapped_column(String(50))
    code: Mapped[str | None] = mapped_column(String(50))
    name: Mapped[str | None] = mapped_column(String(255))


class Wire:
    """WSGI middleware in front of the sandbox: counts /batch calls and can fake answers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.batches: list[dict[str, Any]] = []
        #: answers for the next /batch calls: "lost" (processed, then 502) or a results list
        self.faults: list[Any] = []
        #: while set, every /batch call is answered 503 unprocessed (Connec! is down)
        self.down = False
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != "/batch":
            return self.app(environ, start_response)
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self.lock:
            self.batches.append(json.loads(raw))
            fault = self.faults.pop(0) if self.faults else None
        import io

        environ["wsgi.input"] = io.BytesIO(raw)
        if self.down:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"down"]
        if fault is None:
            return self.app(environ, start_response)
        if fault == "lost":  # Connec! did the work but the answer never arrived
            body = b"".join(self.app(environ, lambda *a: None))
            assert body
            start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
            return [b"bad gateway"]
        start_response("200 OK", [("Content-Type", "application/vnd.api+json")])
        return [json.dumps({"results": fault}).encode()]


class World:
    """A host app with three mapped models and the sandbox on one real port."""

    def __init__(
        self, tmp_path: Any, live_server: Callable[..., Any], *, lines: bool = False, **config: Any
    ) -> None:
        """``lines=True`` also maps items, and invoices with their lines (``lines/item_id``)."""
        # notifications applied in the request unless a test asks for the background job
        config = {"MAESTRANO_SYNC_NOTIFY_INLINE": True, **config}
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.sandbox = create_app(
            {
                "SANDBOX_URL": f"{self.base}/sandbox",
                "SANDBOX_DATABASE": str(tmp_path / "sandbox.sqlite3"),
                "SANDBOX_APPS": [{"id": "app-sync", "key": "sync-key", "host": self.base}],
                "TESTING": True,
            }
        )
        self.app = Flask("synchost", instance_path=str(tmp_path / "instance"))
        self.app.config.update(
            SECRET_KEY="k",
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'host.db'}",
            MAESTRANO_PRESETS={
                "sandbox": preset_for(self.sandbox, "app-sync"),
                "other": preset_data(api={"id": "app-other", "key": "other-key"}),
            },
            MAESTRANO_DEFAULT_PRESET="sandbox",
            MAESTRANO_HTTP_RETRIES=0,
            MAESTRANO_SYNC_BACKOFF=0,
            MAESTRANO_IMPORT_PAGE_SIZE=2,
            **config,
        )
        db.init_app(self.app)
        self.maestrano = Maestrano(self.app)
        self.context = self.app.app_context()
        self.context.push()
        db.create_all()
        self.store = SqlAlchemySyncStore(db.engine)
        self.store.create_tables()
        self.companies = ModelMapping(
            db.session,
            Company,
            "organizations",
            fields={"name": "name"},
            group="group_id",
            archived="archived",
        )
        self.contacts = ModelMapping(
            db.session,
            Contact,
            "people",
            fields={"first_name": "first_name", "last_name": "last_name", "email.address": "email"},
            references={"organization_id": ("organizations", "company_id")},
            group="group_id",
            updated_at="updated_at",
        )
        invoice_fields = {"transaction_number": "number", **({"lines": "lines"} if lines else {})}
        invoice_references: dict[str, tuple[str, str | None]] = {
            "organization_id": ("organizations", "company_id")
        }
        if lines:
            invoice_references["lines/item_id"] = ("items", None)
        self.invoices = ModelMapping(
            db.session,
            Invoice,
            "invoices",
            fields=invoice_fields,
            references=invoice_references,
            group="group_id",
        )
        self.items = ModelMapping(
            db.session, Item, "items", fields={"code": "code", "name": "name"}, group="group_id"
        )
        mappings = [self.invoices, self.contacts, self.companies, *([self.items] if lines else [])]
        self.setup = syncing.configure(self.app, self.store, mappings)
        self.wire = Wire(self.sandbox)
        live_server(DispatcherMiddleware(self.app.wsgi_app, {"/sandbox": self.wire}), port=port)
        self.preset = self.maestrano.preset("sandbox")
        self.unhook: Callable[[], None] | None = None

    def close(self) -> None:
        if self.unhook is not None:
            self.unhook()
        db.session.remove()
        db.engine.dispose()
        self.context.pop()

    # -- helpers --------------------------------------------------------------------------

    def run(self, **options: Any) -> Any:
        return syncing.run_sync(self.app, self.preset, GROUP, **options)

    def entities(self, collection: str) -> list[dict[str, Any]]:
        with database(self.sandbox).connect() as conn:
            return [render(row, external=True) for row in all_entities(conn, GROUP, collection)]

    def entity(self, collection: str, connec_id: str) -> dict[str, Any]:
        with database(self.sandbox).connect() as conn:
            row = find_entity(conn, GROUP, collection, connec_id)
            assert row is not None
            return render(row, external=False)

    def edit_in_connec(self, collection: str, connec_id: str, changes: dict[str, Any]) -> None:
        """Another app's change, without a notification."""
        with database(self.sandbox).connect() as conn:
            row = find_entity(conn, GROUP, collection, connec_id)
            assert row is not None
            update_entity(conn, row, changes, [])

    def connec_id(self, collection: str, local_id: int) -> str:
        found = self.store.by_local("sandbox", GROUP, collection, [str(local_id)])[str(local_id)]
        assert found.connec_id is not None
        return found.connec_id

    def age_connec_data(self) -> None:
        """Every sandbox record last changed long ago (so a window shows what it reads)."""
        with database(self.sandbox).connect() as conn:
            conn.execute("UPDATE entities SET updated_at = '2020-01-01T00:00:00Z'")


class HeldExecutor:
    """An executor that keeps the jobs it is given until the test runs (or drops) them: the
    request that queued one has been answered by then, like with a real queue."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Any, tuple[Any, ...], Future[Any]]] = []

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.jobs.append((fn, args, future))
        return future

    def run_all(self) -> list[Any]:
        """Run the held jobs in this thread, oldest first; returns their results."""
        results = []
        while self.jobs:
            fn, args, future = self.jobs.pop(0)
            future.set_result(fn(*args))
            results.append(future.result())
        return results

    def drop_all(self) -> int:
        """Forget the held jobs, as a process that died would; returns how many."""
        count = len(self.jobs)
        self.jobs.clear()
        return count


#: the app an in-process RQ worker gets from :func:`current_world_app` (set by the test)
WORLD_APPS: list[Flask] = []


def current_world_app() -> Flask:
    """The app factory of the in-process queue-worker tests: the test's world app."""
    return WORLD_APPS[-1]


@pytest.fixture
def world(tmp_path: Any, live_server: Callable[..., Any]) -> Iterator[World]:
    """A :class:`World` for one test (import this fixture into the test module)."""
    built = World(tmp_path, live_server)
    yield built
    built.close()


def contact_named(first: str) -> Contact:
    """The host's contact with this first name."""
    found: Contact = db.session.execute(select(Contact).filter_by(first_name=first)).scalar_one()
    return found
