"""The README's "Integration in 20 lines" runs as written: login, a logged-in page, a webhook."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from flask_login import UserMixin, login_required

from flask_maestrano.testing import TestIdP, login
from tests.conftest import preset_data

README = Path(__file__).resolve().parent.parent / "README.md"


def integration_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Integration in 20 lines", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the README lost its integration example"
    return match.group(1)


class Company:
    rows: dict[str, Company] = {}

    def __init__(self, uid: str, name: str) -> None:
        self.uid, self.name, self.members, self.cancelled = uid, name, {}, False

    @classmethod
    def get_or_create(cls, uid: str, name: str) -> tuple[Company, bool]:
        created = uid not in cls.rows
        if created:
            cls.rows[uid] = cls(uid, name)
        return cls.rows[uid], created

    @classmethod
    def get(cls, uid: str) -> Company:
        return cls.rows[uid]

    def add_member(self, user: User, role: str) -> None:
        self.members[user.email] = role

    def cancel(self) -> None:
        self.cancelled = True


class User(UserMixin):
    rows: dict[int, User] = {}

    def __init__(self, uid: str, email: str) -> None:
        self.id, self.uid, self.email = len(self.rows) + 1, uid, email

    @classmethod
    def get_or_create(cls, uid: str, email: str) -> tuple[User, bool]:
        for user in cls.rows.values():
            if user.uid == uid:
                return user, False
        user = cls(uid, email)
        cls.rows[user.id] = user
        return user, True

    @classmethod
    def get(cls, user_id: int) -> User | None:
        return cls.rows.get(user_id)


@pytest.fixture
def readme_app(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, TestIdP]:
    Company.rows, User.rows = {}, {}
    models = types.ModuleType("myapp.models")
    models.Company, models.User = Company, User  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "myapp", types.ModuleType("myapp"))
    monkeypatch.setitem(sys.modules, "myapp.models", models)
    idp = TestIdP()
    preset = preset_data(sso={"x509_certificate": idp.cert_pem})
    monkeypatch.setenv("FLASK_SECRET_KEY", '"readme-secret"')
    monkeypatch.setenv("FLASK_MAESTRANO_PRESETS", json.dumps({"production": preset}))
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(integration_example(), str(README), "exec"), namespace)
    app = namespace["create_app"]()

    @app.get("/me")
    @login_required
    def me() -> str:
        from flask_login import current_user

        return str(current_user.email)

    return app, idp


def test_the_readme_example_logs_in_and_keeps_the_user_logged_in(readme_app: tuple[Any, TestIdP]) -> None:
    app, idp = readme_app
    client = app.test_client()
    assert login(client, idp, role="Member").status_code == 302
    page = client.get("/me")
    assert page.status_code == 200 and page.get_data(as_text=True) == User.rows[1].email
    assert Company.get("cld-1").members == {User.rows[1].email: "Member"}


def test_the_readme_example_cancels_a_company(readme_app: tuple[Any, TestIdP]) -> None:
    app, idp = readme_app
    client = app.test_client()
    login(client, idp)
    answer = client.delete("/maestrano/account/groups/cld-1", auth=("app-test", "test-secret-key"))
    assert answer.status_code == 200
    assert Company.get("cld-1").cancelled
