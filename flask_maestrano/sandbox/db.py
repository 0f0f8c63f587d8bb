"""The sandbox's state: one SQLite file, plain :mod:`sqlite3`.

Every request opens its own connection (SQLite serialises writers); plain functions used by
tests open one too. Timestamps are stored as ISO-8601 UTC strings ``YYYY-MM-DDTHH:MM:SSZ``.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from .seed import seed_group
from .times import iso as iso
from .times import parse_time as parse_time
from .times import utcnow as utcnow

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS apps (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, name TEXT NOT NULL, host TEXT NOT NULL,
    marketplace TEXT NOT NULL, init_path TEXT NOT NULL, consume_path TEXT NOT NULL,
    group_path TEXT NOT NULL, group_user_path TEXT NOT NULL, notification_path TEXT NOT NULL,
    external_ids INTEGER NOT NULL DEFAULT 0,
    dev_platform_key TEXT NOT NULL, dev_platform_secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    n INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT UNIQUE, name TEXT NOT NULL, surname TEXT NOT NULL,
    email TEXT NOT NULL, country TEXT NOT NULL, company_name TEXT NOT NULL, sso_session TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    n INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT UNIQUE, name TEXT NOT NULL, email TEXT NOT NULL,
    free_trial_end_at TEXT NOT NULL, has_credit_card INTEGER NOT NULL DEFAULT 0,
    currency TEXT NOT NULL, timezone TEXT NOT NULL, country TEXT NOT NULL, city TEXT NOT NULL,
    reseller_id TEXT NOT NULL, main_accounting TEXT NOT NULL, status TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships (
    group_uid TEXT NOT NULL, user_uid TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (group_uid, user_uid)
);
CREATE TABLE IF NOT EXISTS app_groups (
    app_id TEXT NOT NULL, group_uid TEXT NOT NULL, PRIMARY KEY (app_id, group_uid)
);
CREATE TABLE IF NOT EXISTS cancellations (
    app_id TEXT NOT NULL, group_uid TEXT NOT NULL, cancelled_at TEXT NOT NULL, PRIMARY KEY (app_id, group_uid)
);
CREATE TABLE IF NOT EXISTS bills (
    n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, app_id TEXT NOT NULL, group_id TEXT NOT NULL,
    price_cents INTEGER NOT NULL, status TEXT NOT NULL, currency TEXT NOT NULL, units REAL NOT NULL,
    description TEXT NOT NULL, period_started_at TEXT, period_ended_at TEXT,
    third_party INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS recurring_bills (
    n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, app_id TEXT NOT NULL, group_id TEXT NOT NULL,
    price_cents INTEGER NOT NULL, status TEXT NOT NULL, currency TEXT NOT NULL, description TEXT NOT NULL,
    start_date TEXT NOT NULL, period TEXT NOT NULL, frequency INTEGER NOT NULL, cycles INTEGER,
    initial_cents INTEGER NOT NULL, last_execution_at TEXT, next_execution_at TEXT,
    remaining_cycles INTEGER, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
    id TEXT PRIMARY KEY, group_id TEXT NOT NULL, collection TEXT NOT NULL, data TEXT NOT NULL,
    external_ids TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entities_group ON entities (group_id, collection);
CREATE TABLE IF NOT EXISTS calls (
    n INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, app_id TEXT NOT NULL, action TEXT NOT NULL,
    method TEXT NOT NULL, url TEXT NOT NULL, status INTEGER, outcome TEXT NOT NULL
);
"""

ROLES = ("Member", "Power User", "Admin", "Super Admin")


def new_token() -> str:
    """A marketplace session token (36 characters, like the platform's)."""
    return str(uuid.uuid4())


class Database:
    """The sandbox database at ``path``; :meth:`connect` yields a connection in a transaction."""

    def __init__(self, path: str) -> None:
        self.path = path
        with self.connect() as conn:
            conn.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    # -- settings -----------------------------------------------------------------------

    def setting(self, name: str, default: Any = None) -> Any:
        with self.connect() as conn:
            row = conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return json.loads(row["value"]) if row else default

    def set_setting(self, name: str, value: Any) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (name, json.dumps(value)),
            )

    def setting_or_create(self, name: str, factory: Any) -> Any:
        """The stored setting, created with ``factory()`` on first use (race-free)."""
        value = self.setting(name)
        if value is not None:
            return value
        with self.connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO settings (name, value) VALUES (?, ?)", (name, json.dumps(factory()))
            )
            row = conn.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return json.loads(row["value"])

    # -- apps ---------------------------------------------------------------------------

    def upsert_app(self, data: Mapping[str, Any]) -> None:
        """Register or update an app from a ``SANDBOX_APPS`` entry."""
        app_id = str(data["id"])
        existing = self.app(app_id)
        row: dict[str, Any] = dict(existing) if existing else {}
        defaults = {
            "key": secrets.token_urlsafe(24),
            "name": app_id,
            "host": "http://127.0.0.1:5000",
            "marketplace": "sandbox",
            "init_path": "/maestrano/auth/saml/init",
            "consume_path": "/maestrano/auth/saml/consume",
            "group_path": "/maestrano/account/groups/:id",
            "group_user_path": "/maestrano/account/groups/:group_id/users/:id",
            "notification_path": "/maestrano/connec/notifications",
            "external_ids": False,
            "dev_platform_key": f"env-{app_id}",
            "dev_platform_secret": secrets.token_urlsafe(24),
        }
        for name, default in defaults.items():
            if data.get(name) is not None:
                row[name] = data[name]
            row.setdefault(name, default)
        row["host"] = str(row["host"]).rstrip("/")
        row["external_ids"] = 1 if row["external_ids"] in (True, 1, "true", "True") else 0
        row["id"] = app_id
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.connect() as conn:
            conn.execute(f"INSERT OR REPLACE INTO apps ({columns}) VALUES ({marks})", tuple(row.values()))  # noqa: S608

    def app(self, app_id: str) -> sqlite3.Row | None:
        with self.connect() as conn:
            row: sqlite3.Row | None = conn.execute("SELECT * FROM apps WHERE id = ?", (app_id,)).fetchone()
        return row

    def apps(self) -> list[sqlite3.Row]:
        with self.connect() as conn:
            return conn.execute("SELECT * FROM apps ORDER BY id").fetchall()

    # -- users, groups, memberships ------------------------------------------------------

    def create_user(
        self, *, name: str, surname: str, email: str, country: str = "US", company_name: str = ""
    ) -> str:
        now = iso(utcnow())
        with self.connect() as conn:
            cur = conn.execute(
                "INSERT INTO users (name, surname, email, country, company_name, sso_session, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, surname, email, country, company_name, new_token(), now, now),
            )
            uid = f"usr-{cur.lastrowid}"
            conn.execute("UPDATE users SET uid = ? WHERE n = ?", (uid, cur.lastrowid))
        return uid

    def create_group(
        self,
        *,
        name: str,
        free_trial_days: int = 30,
        currency: str = "USD",
        timezone_name: str = "America/Los_Angeles",
        country: str = "US",
        city: str = "Los Angeles",
        has_credit_card: bool = False,
    ) -> str:
        """Create a company (group) with its seed Connec! data."""
        now = utcnow()
        with self.connect() as conn:
            cur = conn.execute(
                "INSERT INTO groups (name, email, free_trial_end_at, has_credit_card, currency, timezone, "
                "country, city, reseller_id, main_accounting, status, created_at, updated_at) "
                "VALUES (?, '', ?, ?, ?, ?, ?, ?, 'rsl-449s8fsd', 'xero', 'running', ?, ?)",
                (
                    name,
                    iso(now + timedelta(days=free_trial_days)),
                    int(has_credit_card),
                    currency,
                    timezone_name,
                    country,
                    city,
                    iso(now),
                    iso(now),
                ),
            )
            uid = f"cld-{cur.lastrowid}"
            conn.execute(
                "UPDATE groups SET uid = ?, email = ? WHERE n = ?", (uid, f"{uid}@example.com", cur.lastrowid)
            )
            seed_group(conn, uid, name)
        return uid

    def user(self, uid: str) -> sqlite3.Row | None:
        with self.connect() as conn:
            row: sqlite3.Row | None = conn.execute("SELECT * FROM users WHERE uid = ?", (uid,)).fetchone()
        return row

    def group(self, uid: str) -> sqlite3.Row | None:
        with self.connect() as conn:
            row: sqlite3.Row | None = conn.execute("SELECT * FROM groups WHERE uid = ?", (uid,)).fetchone()
        return row

    def users(self) -> list[sqlite3.Row]:
        with self.connect() as conn:
            return conn.execute("SELECT * FROM users ORDER BY n").fetchall()

    def groups(self) -> list[sqlite3.Row]:
        with self.connect() as conn:
            return conn.execute("SELECT * FROM groups ORDER BY n").fetchall()

    def set_membership(self, group_uid: str, user_uid: str, role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO memberships (group_uid, user_uid, role) VALUES (?, ?, ?) "
                "ON CONFLICT(group_uid, user_uid) DO UPDATE SET role = excluded.role",
                (group_uid, user_uid, role),
            )

    def remove_membership(self, group_uid: str, user_uid: str) -> None:
        with self.connect() as conn:
            conn.execute(
                "DELETE FROM memberships WHERE group_uid = ? AND user_uid = ?", (group_uid, user_uid)
            )

    def membership(self, group_uid: str, user_uid: str) -> sqlite3.Row | None:
        with self.connect() as conn:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM memberships WHERE group_uid = ? AND user_uid = ?", (group_uid, user_uid)
            ).fetchone()
        return row

    def memberships(self, *, user_uid: str | None = None) -> list[sqlite3.Row]:
        query = (
            "SELECT m.*, g.name AS group_name, u.name AS user_name, u.surname AS user_surname "
            "FROM memberships m JOIN groups g ON g.uid = m.group_uid JOIN users u ON u.uid = m.user_uid"
        )
        with self.connect() as conn:
            if user_uid is not None:
                return conn.execute(query + " WHERE m.user_uid = ? ORDER BY g.n", (user_uid,)).fetchall()
            return conn.execute(query + " ORDER BY g.n, u.n").fetchall()

    def attach(self, app_id: str, group_uid: str) -> None:
        """Add the app to the company (the company 'bought' it, again if it had cancelled it)."""
        with self.connect() as conn:
            conn.execute("DELETE FROM cancellations WHERE app_id = ? AND group_uid = ?", (app_id, group_uid))
            conn.execute(
                "INSERT OR IGNORE INTO app_groups (app_id, group_uid) VALUES (?, ?)", (app_id, group_uid)
            )

    def launch(self, app_id: str, group_uid: str) -> bool:
        """A member launches the app for the company: attach it unless the company cancelled it.

        A company that never used the app gets it on first launch (the marketplace's "add"
        and "launch" in one step); a company that cancelled it must add it again
        (:meth:`attach`, the admin page's *Add*). False when the launch is refused.
        """
        if self.cancelled(app_id, group_uid):
            return False
        with self.connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO app_groups (app_id, group_uid) VALUES (?, ?)", (app_id, group_uid)
            )
        return True

    def detach(self, app_id: str, group_uid: str) -> None:
        with self.connect() as conn:
            conn.execute("DELETE FROM app_groups WHERE app_id = ? AND group_uid = ?", (app_id, group_uid))

    def cancel_app(self, app_id: str, group_uid: str) -> int:
        """The company cancelled the app: detach it, keep it cancelled and end its recurring bills.

        Returns how many recurring bills were cancelled (invoiced ones stay as they are).
        """
        now = iso(utcnow())
        with self.connect() as conn:
            conn.execute("DELETE FROM app_groups WHERE app_id = ? AND group_uid = ?", (app_id, group_uid))
            conn.execute(
                "INSERT OR REPLACE INTO cancellations (app_id, group_uid, cancelled_at) VALUES (?, ?, ?)",
                (app_id, group_uid, now),
            )
            ended: int = conn.execute(
                "UPDATE recurring_bills SET status = 'cancelled', next_execution_at = NULL, updated_at = ? "
                "WHERE app_id = ? AND group_id = ? AND status NOT IN ('cancelled', 'invoiced')",
                (now, app_id, group_uid),
            ).rowcount
        return ended

    def cancelled(self, app_id: str, group_uid: str) -> bool:
        """Whether the company cancelled the app and has not added it again."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT 1 FROM cancellations WHERE app_id = ? AND group_uid = ?", (app_id, group_uid)
            ).fetchone()
        return row is not None

    def app_group_uids(self, app_id: str) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT a.group_uid FROM app_groups a JOIN groups g ON g.uid = a.group_uid "
                "WHERE a.app_id = ? ORDER BY g.n",
                (app_id,),
            ).fetchall()
        return [row["group_uid"] for row in rows]

    def group_app_ids(self, group_uid: str) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT app_id FROM app_groups WHERE group_uid = ? ORDER BY app_id", (group_uid,)
            ).fetchall()
        return [row["app_id"] for row in rows]

    def end_session(self, user_uid: str) -> None:
        """Regenerate the user's marketplace session token: every app session of the user ends."""
        with self.connect() as conn:
            conn.execute(
                "UPDATE users SET sso_session = ?, updated_at = ? WHERE uid = ?",
                (new_token(), iso(utcnow()), user_uid),
            )

    # -- call log -----------------------------------------------------------------------

    def log_call(
        self, app_id: str, action: str, method: str, url: str, status: int | None, outcome: str
    ) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO calls (at, app_id, action, method, url, status, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (iso(utcnow()), app_id, action, method, url, status, outcome),
            )

    def calls(self, limit: int = 50) -> list[sqlite3.Row]:
        with self.connect() as conn:
            return conn.execute("SELECT * FROM calls ORDER BY n DESC LIMIT ?", (limit,)).fetchall()
