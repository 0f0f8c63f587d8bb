"""A complete Flask app on the Maestrano marketplace, in one file (docs/quickstart.rst walks through it).

Run it against the sandbox platform (docs/quickstart.rst, "Three steps")::

    flask maestrano sandbox                      # terminal 1: prints the lines to paste
    export FLASK_SECRET_KEY=change-me ...        # terminal 2: paste them, then
    flask --app quickstart run                   # and open http://127.0.0.1:5000/
"""

from flask import Blueprint, Flask, redirect, render_template_string, session, url_for
from flask_login import LoginManager, UserMixin, login_required
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_maestrano import Maestrano, signals
from flask_maestrano.contrib.sqlalchemy import (
    MaestranoGroupMixin,
    MaestranoMembershipMixin,
    MaestranoUserMixin,
    install_loaders,
)
from flask_maestrano.sso import maestrano_logout

# -- models ---------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class User(UserMixin, MaestranoUserMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))


class Company(MaestranoGroupMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)


class Member(MaestranoMembershipMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(db.ForeignKey("user.id"))
    group_id: Mapped[int] = mapped_column(db.ForeignKey("company.id"))


# -- single sign-on -------------------------------------------------------------------------

maestrano = Maestrano()
login_manager = LoginManager()
login_manager.login_view = "maestrano.sso_init"  # @login_required sends visitors to sign in
install_loaders(maestrano, db, User, Company, Member)  # find or create company, user, membership


@login_manager.user_loader
def load_user(user_id):
    return db.session.get(User, int(user_id))


@signals.login_succeeded.connect
def remember_company(app, group, **extra):
    session["company_id"] = group.id  # the company the user launched the app for
    group.active = True  # the platform let them in: the company uses the app (again)
    db.session.commit()


# -- account webhooks -----------------------------------------------------------------------


def find_company(group_id, preset):
    query = select(Company).filter_by(uid=group_id, tenant=preset.name)
    return db.session.execute(query).scalar_one_or_none()


@maestrano.on_group_cancelled
def cancel_company(group_id, preset):
    company = find_company(group_id, preset)
    if company is not None:
        company.active = False
        db.session.execute(delete(Member).filter_by(group_id=company.id))
        db.session.commit()


@maestrano.on_member_removed
def remove_member(group_id, user_id, preset):
    company = find_company(group_id, preset)
    user = db.session.execute(select(User).filter_by(uid=user_id, tenant=preset.name)).scalar()
    if company is not None and user is not None:
        db.session.execute(delete(Member).filter_by(group_id=company.id, user_id=user.id))
        db.session.commit()


# -- pages ----------------------------------------------------------------------------------

bp = Blueprint("quickstart", __name__)
PAGE = """<!doctype html><title>Quick start</title>
{% if current_user.is_authenticated %}
  <p id="user">{{ current_user.first_name }} {{ current_user.last_name }} ({{ current_user.email }})</p>
  <p id="company">{{ company.name if company and company.active else "No company: it cancelled the app" }}</p>
  <a id="logout" href="{{ url_for('quickstart.logout') }}">Log out</a>
{% else %}
  <a id="login" href="{{ url_for('quickstart.dashboard') }}">Log in with Maestrano</a>
{% endif %}"""


@bp.get("/")
def home():
    company = db.session.get(Company, session.get("company_id", 0))
    return render_template_string(PAGE, company=company)


@bp.get("/dashboard")
@login_required
def dashboard():
    return redirect(url_for("quickstart.home"))


@bp.get("/logout")
def logout():
    return maestrano_logout(default=url_for("quickstart.home"))  # and the marketplace's session


# -- the application ------------------------------------------------------------------------


def create_app(config=None):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///quickstart.sqlite3"  # in the instance folder
    app.config.from_prefixed_env()  # FLASK_SECRET_KEY, FLASK_MAESTRANO_AUTO_CONFIGURE...
    app.config.update(config or {})
    db.init_app(app)
    login_manager.init_app(app)
    maestrano.init_app(app)  # /maestrano/... routes, single-logout check, `flask maestrano`
    app.register_blueprint(bp)
    with app.app_context():
        db.create_all()
    return app
