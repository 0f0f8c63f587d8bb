"""contrib.sqlalchemy: the integration checklist on a real SQLite database file."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask_login import LoginManager, UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from flask_maestrano import Maestrano
from flask_maestrano.contrib.sqlalchemy import (
    MaestranoGroupMixin,
    MaestranoMembershipMixin,
    MaestranoUserMixin,
    install_loaders,
)
from flask_maestrano.testing import TestIdP, login

from .conftest import preset_data


class World:
    def __init__(self, tmp_path: Any, idp: TestIdP, creation_mode: str = "real") -> None:
        db = SQLAlchemy()

        class Account(UserMixin, MaestranoUserMixin, db.Model):  # type: ignore[misc,name-defined]
            __tablename__ = "account"
            id: Mapped[int] = mapped_column(Integer, primary_key=True)
            email: Mapped[str | None] = mapped_column(String(255))
            first_name: Mapped[str | None] = mapped_column(String(100))
            last_name: Mapped[str | None] = mapped_column(String(100))

        class Company(MaestranoGroupMixin, db.Model):  # type: ignore[misc,name-defined]
            __tablename__ = "company"
            id: Mapped[int] = mapped_column(Integer, primary_key=True)
            name: Mapped[str | None] = mapped_column(String(255))
            currency: Mapped[str | None] = mapped_column(String(3))

        class Member(MaestranoMembershipMixin, db.Model):  # type: ignore[misc,name-defined]
            __tablename__ = "member"
            id: Mapped[int] = mapped_column(Integer, primary_key=True)
            user_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
            group_id: Mapped[int] = mapped_column(ForeignKey("company.id"))

        app = Flask("sqlapp", instance_path=str(tmp_path / "instance"))
        app.config.update(
            SECRET_KEY="k",
            SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'app.db'}",
            MAESTRANO_PRESETS={
                "production": preset_data(
                    sso={"x509_certificate": idp.cert_pem, "creation_mode": creation_mode}
                )
            },
        )
        db.init_app(app)
        maestrano = Maestrano(app)
        install_loaders(maestrano, db, Account, Company, Member)
        LoginManager(app).user_loader(lambda user_id: db.session.get(Account, int(user_id)))

        @app.get("/page")
        def page() -> str:
            from flask_login import current_user

            return f"user:{current_user.uid}" if current_user.is_authenticated else "anonymous"

        with app.app_context():
            db.create_all()
        self.app, self.db, self.idp = app, db, idp
        self.Account, self.Company, self.Member = Account, Company, Member

    def login(self, **kwargs: Any) -> Any:
        client = self.app.test_client()
        response = login(client, self.idp, **kwargs)
        assert response.status_code == 302 and response.headers["Location"] == "/", response.headers
        return client

    def count(self, model: Any) -> int:
        with self.app.app_context():
            return int(self.db.session.execute(select(func.count()).select_from(model)).scalar_one())

    def rows(self, model: Any) -> list[Any]:
        with self.app.app_context():
            return list(self.db.session.execute(select(model)).scalars())


@pytest.fixture
def world(tmp_path: Any, test_idp: TestIdP) -> World:
    return World(tmp_path, test_idp)


def test_new_group_creates_a_company_and_stores_provider_uid_and_preset(world: World) -> None:
    client = world.login(uid="usr-1", group_uid="cld-1", role="Admin")
    [company] = world.rows(world.Company)
    assert (company.provider, company.uid, company.tenant, company.name, company.currency) == (
        "maestrano",
        "cld-1",
        "production",
        "Company cld-1",
        "USD",
    )
    [account] = world.rows(world.Account)
    assert (account.provider, account.uid, account.tenant, account.email) == (
        "maestrano",
        "usr-1",
        "production",
        "usr-1@example.com",
    )
    assert (account.first_name, account.last_name, account.is_maestrano) == ("Jane", "Doe", True)
    [member] = world.rows(world.Member)
    assert (member.user_id, member.group_id, member.role, member.tenant) == (
        account.id,
        company.id,
        "Admin",
        "production",
    )
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"


def test_new_user_joins_a_known_company(world: World) -> None:
    world.login(uid="usr-1", group_uid="cld-1", role="Admin")
    world.login(uid="usr-2", group_uid="cld-1", role="Member")
    assert world.count(world.Company) == 1 and world.count(world.Account) == 2
    assert sorted(m.role for m in world.rows(world.Member)) == ["Admin", "Member"]


def test_new_user_of_a_new_company_gets_one_created_for_it(world: World) -> None:
    world.login(uid="usr-1", group_uid="cld-1")
    world.login(uid="usr-2", group_uid="cld-2")
    assert sorted(c.uid for c in world.rows(world.Company)) == ["cld-1", "cld-2"]


def test_known_user_is_just_logged_in_and_role_follows_the_platform(world: World) -> None:
    world.login(uid="usr-1", group_uid="cld-1", role="Member")
    client = world.login(uid="usr-1", group_uid="cld-1", role="Admin")
    assert (
        world.count(world.Account) == 1 and world.count(world.Company) == 1 and world.count(world.Member) == 1
    )
    assert world.rows(world.Member)[0].role == "Admin"
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"


def test_known_user_in_a_second_company_gets_a_second_membership(world: World) -> None:
    world.login(uid="usr-1", group_uid="cld-1", role="Admin")
    world.login(uid="usr-1", group_uid="cld-2", role="Member")
    assert world.count(world.Account) == 1 and world.count(world.Member) == 2


def test_existing_local_user_with_the_same_email_is_linked(world: World) -> None:
    with world.app.app_context():
        world.db.session.add(world.Account(email="usr-1@example.com", first_name="Local"))
        world.db.session.commit()
    world.login(uid="usr-1", group_uid="cld-1")
    [account] = world.rows(world.Account)
    assert (account.uid, account.provider, account.first_name) == ("usr-1", "maestrano", "Local")


def test_email_matching_two_local_users_links_neither(world: World) -> None:
    with world.app.app_context():
        world.db.session.add_all(
            [world.Account(email="usr-1@example.com"), world.Account(email="usr-1@example.com")]
        )
        world.db.session.commit()
    world.login(uid="usr-1", group_uid="cld-1")
    accounts = world.rows(world.Account)
    assert len(accounts) == 3 and [a.uid for a in accounts].count(None) == 2


def test_virtual_mode_stores_the_virtual_uid_and_email(tmp_path: Any, test_idp: TestIdP) -> None:
    world = World(tmp_path, test_idp, creation_mode="virtual")
    world.login(uid="usr-1", group_uid="cld-1")
    [account] = world.rows(world.Account)
    assert account.uid == "usr-1.cld-1" and account.email == "usr-1.cld-1@mno-api-sandbox-mail.maestrano.com"


def test_refused_login_leaves_the_database_empty(world: World) -> None:
    client = world.app.test_client()
    attacker = TestIdP(name="attacker")
    response = login(client, attacker)
    assert "/app_access_unauthorized" in response.headers["Location"]
    assert world.count(world.Account) == world.count(world.Company) == world.count(world.Member) == 0
