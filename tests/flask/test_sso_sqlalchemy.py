"""contrib.sqlalchemy: the integration checklist on a real SQLite database file."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask, abort, redirect, request
from flask_login import LoginManager, UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from flask_maestrano import ConfigurationError, Maestrano, get_state, signals
from flask_maestrano.contrib.sqlalchemy import (
    MaestranoGroupMixin,
    MaestranoMembershipMixin,
    MaestranoUserMixin,
    install_loaders,
    refresh_email_keys,
)
from flask_maestrano.sso import migration as links
from flask_maestrano.testing import TestIdP, login
from tests.support.presets import preset_data


class World:
    """An app on contrib.sqlalchemy with presets ``production`` and ``other`` (same IdP).

    ``/link`` is the host's confirmation page of the ``"confirm"`` migration policy: the
    local owner proves ownership with the account's ``password``.
    """

    def __init__(
        self,
        tmp_path: Any,
        idp: TestIdP,
        creation_mode: str = "real",
        migration: str = "off",
        other: dict[str, Any] | None = None,
    ) -> None:
        db = SQLAlchemy()

        class Account(UserMixin, MaestranoUserMixin, db.Model):  # type: ignore[misc,name-defined]
            __tablename__ = "account"
            id: Mapped[int] = mapped_column(Integer, primary_key=True)
            email: Mapped[str | None] = mapped_column(String(255))
            first_name: Mapped[str | None] = mapped_column(String(100))
            last_name: Mapped[str | None] = mapped_column(String(100))
            password: Mapped[str | None] = mapped_column(String(100))

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
                ),
                "other": preset_data(
                    api={"id": "app-other", "key": "other-secret-key"},
                    sso={"x509_certificate": idp.cert_pem, **(other or {})},
                ),
            },
            MAESTRANO_SSO_MIGRATION=migration,
            MAESTRANO_SSO_LINK_CONFIRM_VIEW="/link",
        )
        db.init_app(app)
        maestrano = Maestrano(app)
        install_loaders(maestrano, db, Account, Company, Member)
        LoginManager(app).user_loader(lambda user_id: db.session.get(Account, int(user_id)))

        @app.get("/page")
        def page() -> str:
            from flask_login import current_user

            return f"user:{current_user.uid}" if current_user.is_authenticated else "anonymous"

        @app.route("/link", methods=["GET", "POST"])
        def link() -> Any:
            pending = links.pending_link()
            if pending is None:
                abort(404)
            if request.method == "GET":
                return f"confirm:{pending.email}"
            account = db.session.get(Account, int(pending.account_id))
            if account is None or account.password is None or request.form["password"] != account.password:
                return "wrong password", 400
            if links.confirm_link(account.id) is None:
                return "not linked", 409
            return redirect(pending.continue_url())

        @app.post("/link/decline")
        def decline() -> Any:
            pending = links.decline_link()
            return redirect(pending.continue_url()) if pending else ("nothing pending", 404)

        with app.app_context():
            db.create_all()
        self.app, self.db, self.idp = app, db, idp
        self.Account, self.Company, self.Member = Account, Company, Member

    def login(self, client: Any = None, *, landing: str = "/", **kwargs: Any) -> Any:
        client = client or self.app.test_client()
        response = login(client, self.idp, **kwargs)
        assert response.status_code == 302 and response.headers["Location"] == landing, response.headers
        return client

    def add_local(self, email: str, **fields: Any) -> int:
        """An account made before the app joined the marketplace; its id."""
        with self.app.app_context():
            account = self.Account(email=email, **fields)
            self.db.session.add(account)
            self.db.session.commit()
            return int(account.id)

    def get(self, account_id: int) -> Any:
        with self.app.app_context():
            return self.db.session.get(self.Account, account_id)

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


# -- migration of existing accounts by email (issue 10, item 3) -----------------------------


def test_migration_is_off_by_default_so_a_matching_email_gets_a_new_account(world: World) -> None:
    local = world.add_local("usr-1@example.com", first_name="Local")
    client = world.login(uid="usr-1", group_uid="cld-1")
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert (world.get(local).uid, world.count(world.Account)) == (None, 2)


def test_auto_links_an_exact_normalised_ascii_match(tmp_path: Any, test_idp: TestIdP) -> None:
    world = World(tmp_path, test_idp, migration="auto")
    local = world.add_local("  Ann.Smith@Example.COM", first_name="Local")
    linked: list[dict[str, Any]] = []
    signals.account_linked.connect(lambda app, **kw: linked.append(kw), world.app, weak=False)
    client = world.login(uid="usr-1", group_uid="cld-1", email="ann.smith@example.com")
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    [account] = world.rows(world.Account)
    assert (account.id, account.uid, account.provider, account.tenant, account.first_name) == (
        local,
        "usr-1",
        "maestrano",
        "production",
        "Local",
    )
    assert linked == [{"account_id": local, "uid": "usr-1", "preset": "production", "mode": "auto"}]


@pytest.mark.parametrize(
    ("local_email", "asserted"),
    [
        ("kate@example.com", "\u212aate@example.com"),  # KELVIN SIGN: Python's lower() gives "k"
        ("\u212aate@example.com", "kate@example.com"),  # the same look-alike stored locally
        ("ann@example.com", "\uff41nn@example.com"),  # FULLWIDTH a
        ("j\u00fcrgen@example.com", "ju\u0308rgen@example.com"),  # decomposed u + diaeresis
    ],
)
def test_a_unicode_look_alike_never_links_and_logs_in_as_a_new_account(
    tmp_path: Any, test_idp: TestIdP, local_email: str, asserted: str
) -> None:
    world = World(tmp_path, test_idp, migration="auto")
    local = world.add_local(local_email, password="pw")
    client = world.login(uid="usr-evil", group_uid="cld-1", email=asserted)
    assert client.get("/page").get_data(as_text=True) == "user:usr-evil"
    assert world.get(local).uid is None and world.count(world.Account) == 2


def test_an_account_of_another_preset_is_never_linked(tmp_path: Any, test_idp: TestIdP) -> None:
    world = World(tmp_path, test_idp, migration="auto")
    theirs = world.add_local("ann@example.com", tenant="other")
    client = world.login(uid="usr-1", group_uid="cld-1", email="ann@example.com")
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    account = world.get(theirs)
    assert (account.uid, account.tenant) == (None, "other")
    # the same account is linked for a user of its own preset
    world.login(preset="other", uid="usr-2", group_uid="cld-9", email="ann@example.com")
    assert world.get(theirs).uid == "usr-2"


def test_a_user_of_another_preset_never_takes_over_a_linked_account(tmp_path: Any, test_idp: TestIdP) -> None:
    world = World(tmp_path, test_idp, migration="auto")
    local = world.add_local("ann@example.com")
    world.login(uid="usr-1", group_uid="cld-1", email="ann@example.com")
    client = world.login(preset="other", uid="usr-1", group_uid="cld-1", email="ann@example.com")
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    account = world.get(local)
    assert (account.uid, account.tenant) == ("usr-1", "production")
    assert sorted(a.tenant for a in world.rows(world.Account)) == ["other", "production"]


def test_an_account_with_a_maestrano_uid_is_never_relinked(tmp_path: Any, test_idp: TestIdP) -> None:
    world = World(tmp_path, test_idp, migration="auto")
    local = world.add_local("ann@example.com", provider="maestrano", uid="usr-1", tenant="production")
    world.login(uid="usr-2", group_uid="cld-1", email="ann@example.com")
    assert world.get(local).uid == "usr-1" and world.count(world.Account) == 2


def test_an_ambiguous_email_links_neither_account(tmp_path: Any, test_idp: TestIdP) -> None:
    world = World(tmp_path, test_idp, migration="auto")
    world.add_local("usr-1@example.com")
    world.add_local("USR-1@example.com")
    world.login(uid="usr-1", group_uid="cld-1")
    accounts = world.rows(world.Account)
    assert len(accounts) == 3 and [a.uid for a in accounts].count(None) == 2


def test_the_policy_is_per_preset(tmp_path: Any, test_idp: TestIdP) -> None:
    world = World(tmp_path, test_idp, migration="off", other={"migration": "auto"})
    local = world.add_local("ann@example.com")
    world.login(uid="usr-1", group_uid="cld-1", email="ann@example.com")
    assert world.get(local).uid is None
    world.login(preset="other", uid="usr-2", group_uid="cld-1", email="ann@example.com")
    assert (world.get(local).uid, world.get(local).tenant) == ("usr-2", "other")


def test_confirm_links_nothing_until_the_owner_proves_ownership(tmp_path: Any, test_idp: TestIdP) -> None:
    world = World(tmp_path, test_idp, migration="confirm")
    local = world.add_local("ann@example.com", password="local-secret", first_name="Local")
    pending: list[Any] = []
    signals.account_link_pending.connect(lambda app, link: pending.append(link), world.app, weak=False)
    client = world.login(uid="usr-1", group_uid="cld-1", email="Ann@example.com", landing="/link")
    # nobody is logged in, nothing is linked or created yet
    assert client.get("/page").get_data(as_text=True) == "anonymous"
    assert world.get(local).uid is None and world.count(world.Account) == 1
    assert world.count(world.Company) == 0
    assert client.get("/link").get_data(as_text=True) == "confirm:Ann@example.com"
    assert [(p.uid, p.account_id, p.preset) for p in pending] == [("usr-1", str(local), "production")]
    # a wrong password links nothing; another browser has no pending link at all
    assert client.post("/link", data={"password": "guess"}).status_code == 400
    assert world.app.test_client().post("/link", data={"password": "local-secret"}).status_code == 404
    assert world.get(local).uid is None
    # the owner confirms: linked, then signed in through the marketplace as that account
    confirmed = client.post("/link", data={"password": "local-secret"})
    assert confirmed.status_code == 302
    assert confirmed.headers["Location"] == "/maestrano/auth/saml/init/production?group_id=cld-1"
    assert (world.get(local).uid, world.get(local).tenant) == ("usr-1", "production")
    assert client.get("/link").status_code == 404  # the pending link is gone
    world.login(client, uid="usr-1", group_uid="cld-1", email="Ann@example.com")
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    [account] = world.rows(world.Account)
    assert (account.id, account.first_name) == (local, "Local")


def test_confirm_never_relinks_an_account_linked_meanwhile(tmp_path: Any, test_idp: TestIdP) -> None:
    world = World(tmp_path, test_idp, migration="confirm")
    local = world.add_local("ann@example.com", password="local-secret")
    client = world.login(uid="usr-1", group_uid="cld-1", email="ann@example.com", landing="/link")
    with world.app.app_context():
        account = world.db.session.get(world.Account, local)
        account.provider, account.uid, account.tenant = "maestrano", "usr-7", "production"
        world.db.session.commit()
    assert client.post("/link", data={"password": "local-secret"}).status_code == 409
    assert world.get(local).uid == "usr-7"


def test_declining_the_link_logs_in_as_a_new_account(tmp_path: Any, test_idp: TestIdP) -> None:
    world = World(tmp_path, test_idp, migration="confirm")
    local = world.add_local("ann@example.com", password="local-secret")
    client = world.login(uid="usr-1", group_uid="cld-1", email="ann@example.com", landing="/link")
    declined = client.post("/link/decline")
    assert declined.headers["Location"] == "/maestrano/auth/saml/init/production?group_id=cld-1"
    world.login(client, uid="usr-1", group_uid="cld-1", email="ann@example.com")
    assert client.get("/page").get_data(as_text=True) == "user:usr-1"
    assert world.get(local).uid is None and world.count(world.Account) == 2


def test_an_expired_pending_link_confirms_nothing(
    tmp_path: Any, test_idp: TestIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, test_idp, migration="confirm")
    local = world.add_local("ann@example.com", password="local-secret")
    client = world.login(uid="usr-1", group_uid="cld-1", email="ann@example.com", landing="/link")
    # the link's clock moves past its TTL (MAESTRANO_SSO_LINK_TTL, 900 s)
    monkeypatch.setattr(get_state(world.app), "clock", lambda: time.time() + 901)
    assert client.post("/link", data={"password": "local-secret"}).status_code == 404
    assert world.get(local).uid is None


def test_rows_written_by_the_orm_keep_their_email_key(world: World) -> None:
    local = world.add_local("\tAnn@Example.com ")
    assert world.get(local).email_key == "ann@example.com"
    with world.app.app_context():
        world.db.session.get(world.Account, local).email = "K\u212a@example.com"
        world.db.session.commit()
        assert world.db.session.get(world.Account, local).email_key is None
        world.db.session.execute(world.Account.__table__.update().values(email_key="stale"))
        assert refresh_email_keys(world.db, world.Account) == 1
        assert world.db.session.get(world.Account, local).email_key is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"MAESTRANO_SSO_MIGRATION": "always"}, "MAESTRANO_SSO_MIGRATION"),
        ({"MAESTRANO_SSO_MIGRATION": "confirm"}, "MAESTRANO_SSO_LINK_CONFIRM_VIEW"),
        ({"MAESTRANO_SSO_LINK_TTL": "15 minutes"}, "MAESTRANO_SSO_LINK_TTL"),
        ({"MAESTRANO_PRESETS": {"p": preset_data(sso={"migration": "yes"})}}, "sso.migration"),
    ],
)
def test_a_bad_migration_setting_is_a_clear_start_up_error(
    make_app: Any, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_app(**config)


def test_confirm_with_idp_initiated_login_warns_at_start_up(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    presets = {"p": preset_data(sso={"migration": "confirm", "idp_initiated": True})}
    make_app(presets=presets, MAESTRANO_SSO_LINK_CONFIRM_VIEW="/link")
    assert "IdP-initiated logins cannot be bound" in caplog.text
