"""The README's integration example runs as written, and its line count is true.

The code block is executed as is (Flask-SQLAlchemy models with flask_maestrano.contrib.sqlalchemy),
configured through the environment variables its comment names: login, a logged-in page,
the cancellation webhook.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask_login import current_user, login_required

from flask_maestrano.testing import TestIdP, login
from tests.support.presets import preset_data

README = Path(__file__).resolve().parents[2] / "README.md"


def integration_example() -> tuple[int, str]:
    """The line count the heading claims and the example's code."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Integration in (\d+) lines\n\n```python\n(.*?)```", text, re.S | re.M)
    assert match is not None, "the README lost its integration example"
    return int(match.group(1)), match.group(2)


def test_the_heading_counts_the_example_lines() -> None:
    claimed, code = integration_example()
    assert claimed == len(code.splitlines())


@pytest.fixture
def readme_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Any, dict[str, Any], TestIdP]:
    idp = TestIdP()
    preset = preset_data(sso={"x509_certificate": idp.cert_pem})
    monkeypatch.setenv("FLASK_SECRET_KEY", '"readme-secret"')
    monkeypatch.setenv("FLASK_MAESTRANO_PRESETS", json.dumps({"production": preset}))
    # the example's own SQLite file, moved out of the working directory
    monkeypatch.setenv("FLASK_SQLALCHEMY_DATABASE_URI", json.dumps(f"sqlite:///{tmp_path / 'app.sqlite3'}"))
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(integration_example()[1], str(README), "exec"), namespace)
    app = namespace["create_app"]()

    @app.get("/me")
    @login_required
    def me() -> str:
        return str(current_user.email)

    return app, namespace, idp


def test_the_readme_example_logs_in_and_keeps_the_user_logged_in(
    readme_app: tuple[Any, dict[str, Any], TestIdP],
) -> None:
    app, models, idp = readme_app
    client = app.test_client()
    assert login(client, idp, role="Member").status_code == 302
    page = client.get("/me")
    with app.app_context():
        db, user = models["db"], models["User"]
        jane = db.session.scalars(db.select(user)).one()
        company = db.session.scalars(db.select(models["Company"])).one()
        member = db.session.scalars(db.select(models["Member"])).one()
        assert page.status_code == 200 and page.get_data(as_text=True) == jane.email
        assert (company.uid, member.user_id, member.group_id, member.role) == (
            "cld-1",
            jane.id,
            company.id,
            "Member",
        )


def test_the_readme_example_cancels_a_company(readme_app: tuple[Any, dict[str, Any], TestIdP]) -> None:
    app, models, idp = readme_app
    client = app.test_client()
    login(client, idp)
    answer = client.delete("/maestrano/account/groups/cld-1", auth=("app-test", "test-secret-key"))
    assert answer.status_code == 200
    with app.app_context():
        db = models["db"]
        assert db.session.scalars(db.select(models["Member"])).all() == []
