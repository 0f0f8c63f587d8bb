"""The demo's pages: the company dashboard, editing a contact, buying storage, logging out,
and the page where the owner of an account made before the marketplace links it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from flask_maestrano import MaestranoError, get_state, syncing
from flask_maestrano.sso import migration

from .integration import COMPANY_KEY, maestrano
from .models import Company, Contact, Membership, Purchase, User, db, utcnow

bp = Blueprint("demo", __name__)


@bp.errorhandler(HTTPException)
def error_page(error: HTTPException) -> tuple[str, int]:
    """The demo's own pages show errors as pages (the extension's routes answer JSON)."""
    return render_template("error.html", error=error), error.code or 500


def current_company() -> tuple[Company | None, Membership | None]:
    """The company the user works in and their membership of it (None once removed)."""
    if not current_user.is_authenticated:
        return None, None
    company = None
    company_id = session.get(COMPANY_KEY)
    if isinstance(company_id, int):
        company = db.session.get(Company, company_id)
    if company is None and current_user.memberships:
        company = current_user.memberships[0].company
    if company is None:
        return None, None
    return company, current_user.membership_in(company)


def company_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Company pages: only for a member of an active company (403 otherwise)."""

    @wraps(view)
    @login_required
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        company, membership = current_company()
        if company is None or membership is None:
            abort(403, "You are not a member of this company.")
        if not company.is_active:
            abort(403, f"The subscription of {company.name} was cancelled.")
        return view(company, membership, *args, **kwargs)

    return wrapper


@bp.get("/")
def index() -> str:
    company, membership = current_company()
    return render_template(
        "index.html", company=company, membership=membership, logins=login_links(), init=init_endpoint()
    )


def login_links() -> list[tuple[str, str]]:
    """``(marketplace, URL)`` to start single sign-on: one link, or one per marketplace when the
    developer platform configured several and none is the default."""
    state = get_state()
    if state.default_preset is not None:
        return [(state.default_preset, url_for(init_endpoint(state.default_preset)))]
    return [(name, url_for(init_endpoint(name), preset=name)) for name in sorted(state.presets)]


def init_endpoint(preset: str | None = None) -> str:
    """The extension's login route for the preset's protocol (SAML or OpenID)."""
    state = get_state()
    chosen = state.presets.get(preset or state.default_preset or "")
    return "maestrano.openid_init" if chosen and chosen.sso.protocol == "openid" else "maestrano.sso_init"


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@company_required
def edit_contact(company: Company, membership: Membership, contact_id: int) -> str | Response:
    contact = Contact.query.filter_by(id=contact_id, company_id=company.id).first_or_404()
    if request.method == "GET":
        return render_template("contact_edit.html", company=company, contact=contact)
    email = request.form.get("email", "").strip()
    if contact.kind == "person":
        first, last = request.form.get("first_name", "").strip(), request.form.get("last_name", "").strip()
        if not first and not last:
            return _invalid(company, contact, "A person needs a first or a last name.")
        contact.first_name, contact.last_name, contact.name = first, last, f"{first} {last}".strip()
    else:
        name = request.form.get("name", "").strip()
        if not name:
            return _invalid(company, contact, "An organization needs a name.")
        contact.name = name
    contact.email = email
    db.session.commit()
    # share the change with the company's other apps: one /batch call through the sync engine
    try:
        errors = syncing.push(current_app._get_current_object(), [contact], contact.collection)
    except MaestranoError as exc:
        errors = [str(exc)]
    if errors:
        flash(f"Saved {contact.name} here, but Connec! did not take the change: {errors[0]}", "error")
    else:
        flash(f"Saved {contact.name} and shared it through Connec!.")
    return redirect(url_for("demo.index"))


def _invalid(company: Company, contact: Contact, message: str) -> tuple[str, int]:
    flash(message, "error")
    return render_template("contact_edit.html", company=company, contact=contact), 400


@bp.post("/storage")
@company_required
def buy_storage(company: Company, membership: Membership) -> Response:
    """An in-app purchase: 10 GB more storage, billed now through the platform (ad-hoc bill)."""
    from flask_maestrano.billing import ad_hoc_bill

    config = current_app.config
    description = f"Extra storage ({config['DEMO_STORAGE_GB']} GB)"
    try:
        bill = ad_hoc_bill(
            maestrano.account(company.preset),
            company.uid,
            price_cents=config["DEMO_STORAGE_PRICE_CENTS"],
            currency=company.currency,
            description=description,
        )
    except MaestranoError as exc:
        flash(f"The purchase failed, nothing was billed: {exc}", "error")
        return redirect(url_for("demo.index"))
    company.extra_storage_gb += config["DEMO_STORAGE_GB"]
    db.session.add(
        Purchase(
            company=company,
            bill_id=bill.id,
            description=description,
            price_cents=config["DEMO_STORAGE_PRICE_CENTS"],
            currency=company.currency,
        )
    )
    db.session.commit()
    flash(f"{description} added: bill {bill.id}.")
    return redirect(url_for("demo.index"))


@bp.route("/link", methods=["GET", "POST"])
def confirm_link() -> str | Response | tuple[str, int]:
    """Single sign-on found an account made before the marketplace with the user's email
    (``MAESTRANO_SSO_LINK_CONFIRM_VIEW``): its owner proves it is theirs with its password."""
    link = migration.pending_link()
    if link is None:
        abort(404, "No account is waiting to be linked: log in with Maestrano again.")
    if request.method == "GET":
        return render_template("link.html", link=link)
    account = db.session.get(User, int(link.account_id))
    if account is None:
        abort(404, "The existing account is gone: log in with Maestrano again.")
    if account.link_locked_until is not None and account.link_locked_until > utcnow():
        flash("Too many wrong passwords: try again later.", "error")
        return render_template("link.html", link=link), 429
    if not account.check_password(request.form.get("password", "")):
        # the page is a password check like a login form: throttled the same way
        account.link_failures += 1
        if account.link_failures >= current_app.config["DEMO_LINK_MAX_FAILURES"]:
            lock = timedelta(seconds=current_app.config["DEMO_LINK_LOCK_SECONDS"])
            account.link_failures, account.link_locked_until = 0, utcnow() + lock
        db.session.commit()
        flash("That is not the password of this account.", "error")
        return render_template("link.html", link=link), 400
    account.link_failures, account.link_locked_until = 0, None
    db.session.commit()
    if migration.confirm_link(account.id) is None:
        abort(409, "This account is already linked to a marketplace user.")
    # linked: sign in again through the marketplace, now as this account (a flash message
    # would not survive: the login starts a new session)
    return redirect(link.continue_url())


@bp.post("/link/decline")
def decline_link() -> Response:
    """The user does not own the existing account: sign in again, as a new account."""
    link = migration.decline_link()
    if link is None:
        abort(404, "No account is waiting to be linked: log in with Maestrano again.")
    return redirect(link.continue_url())


@bp.get("/logout")
def logout() -> Response:
    """Log out here, then on the marketplace (single logout)."""
    from flask_maestrano.sso import maestrano_logout

    session.pop(COMPANY_KEY, None)
    return maestrano_logout(url_for("demo.index"))
