"""Demo CRM: a small business app (contacts and invoices per company) on the Maestrano marketplace.

It implements the whole integration checklist through flask_maestrano (see
``integration.py``). ``python -m examples.demo`` (``make demo``) serves it together with the
embedded sandbox platform; :func:`create_app` builds the app alone, for tests and for other
servers::

    app = create_app({"MAESTRANO_PRESETS": {"sandbox": preset}}, instance_path="/tmp/demo")
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import inspect, text
from werkzeug.security import generate_password_hash

from flask_maestrano.sso.migration import normalize_email

from .integration import connect_signals, maestrano, setup_sync
from .models import User, db
from .views import bp

DEFAULTS: Mapping[str, Any] = {
    "DEMO_PLAN_DESCRIPTION": "Demo CRM monthly plan",
    "DEMO_PLAN_PRICE_CENTS": 2900,
    "DEMO_STORAGE_GB": 10,
    "DEMO_STORAGE_PRICE_CENTS": 500,
    #: accounts that exist before the app joins the marketplace ({"email", "first_name",
    #: "last_name"} and an optional local "password"): single sign-on offers to link them by
    #: email, and their owner confirms with the local password
    "DEMO_EXISTING_USERS": [],
    #: wrong passwords in a row on the link confirmation page before it locks, and for how long
    "DEMO_LINK_MAX_FAILURES": 5,
    "DEMO_LINK_LOCK_SECONDS": 900,
    "MAESTRANO_SSO_MIGRATION": "confirm",
    "MAESTRANO_SSO_LINK_CONFIRM_VIEW": "demo.confirm_link",
    "MAESTRANO_IMPORT_ON_FIRST_LOGIN": True,
    "MAESTRANO_IMPORT_COLLECTIONS": ["organizations", "people", "invoices"],
    #: a notification's change shows on the next page load (a host under load lets a job apply it)
    "MAESTRANO_SYNC_NOTIFY_INLINE": True,
}

login_manager = LoginManager()
csrf = CSRFProtect()


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


def _secret_key(instance_path: str) -> str:
    """A secret kept in the instance folder, so sessions survive a restart."""
    path = os.path.join(instance_path, "secret_key")
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(32)
        with open(
            os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="ascii"
        ) as handle:
            handle.write(key)
        return key


def create_app(config: Mapping[str, Any] | None = None, *, instance_path: str | None = None) -> Flask:
    """The demo app, with its SQLite database in the instance folder.

    ``config`` overrides the defaults; it must configure the extension (``MAESTRANO_PRESETS``
    or ``MAESTRANO_AUTO_CONFIGURE``).
    """
    app = Flask(__name__, instance_path=instance_path)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(DEFAULTS)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "demo.sqlite3")
    # the server is threaded and the import writes off-request: wait for SQLite's lock
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(app.instance_path)

    db.init_app(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    maestrano.init_app(app)
    connect_signals(app)
    setup_sync(app)
    app.register_blueprint(bp)

    with app.app_context():
        db.create_all()
        _upgrade_schema()
        _create_existing_users(app)
    return app


#: columns added to ``user`` since the first release: an instance folder from before gets them
_USER_COLUMNS = {
    "email_key": "VARCHAR(320)",
    "password_hash": "VARCHAR(300)",
    "link_failures": "INTEGER NOT NULL DEFAULT 0",
    "link_locked_until": "DATETIME",
}


def _upgrade_schema() -> None:
    """Add the ``user`` columns an older demo database lacks, and fill ``email_key``."""
    present = {column["name"] for column in inspect(db.engine).get_columns("user")}
    missing = {name: ddl for name, ddl in _USER_COLUMNS.items() if name not in present}
    if not missing:
        return
    with db.engine.begin() as conn:
        for name, ddl in missing.items():
            conn.execute(text(f'ALTER TABLE "user" ADD COLUMN {name} {ddl}'))
    for user in User.query.filter(User.email_key.is_(None)):
        user.email_key = normalize_email(user.email)
    db.session.commit()


def _create_existing_users(app: Flask) -> None:
    for data in app.config["DEMO_EXISTING_USERS"]:
        if User.query.filter_by(email=data["email"]).first() is None:
            db.session.add(
                User(
                    email=data["email"],
                    first_name=data.get("first_name", ""),
                    last_name=data.get("last_name", ""),
                    password_hash=generate_password_hash(data["password"]) if data.get("password") else None,
                )
            )
    db.session.commit()
