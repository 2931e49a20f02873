"""User accounts: a base station logs in with a name and password and receives its site's key
(``RestPusher.py login``), so that nobody copies keys around.

Passwords are kept only as Argon2 hashes. Five wrong passwords in a row lock the account
for fifteen minutes; while locked, no password is even checked. A wrong name and a wrong
password get the same answer, so a login says nothing about which accounts exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ROLES, Site, UserAccount
from models.access import ROLE_SITE
from models.sql import utcnow
from rest.keys import KeyProblem, create_key, get_or_create_site

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD = 10
_HASHER = PasswordHasher()


class LoginRefused(Exception):
    """A login that gives no key; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 401, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class AccountInfo:
    name: str
    role: str
    site: str | None
    disabled: bool
    locked_until: datetime | None
    last_login: datetime | None


def create_account(session: Session, name: str, password: str, role: str = ROLE_SITE,
                   site: str | None = None) -> UserAccount:
    """The caller commits."""
    if role not in ROLES:
        raise KeyProblem(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if role == ROLE_SITE and not site:
        raise KeyProblem("a site account needs a site: pass --site NAME (the base station's)")
    if not name.strip() or len(name) > 64:
        raise KeyProblem("an account name is 1 to 64 characters")
    if len(password) < MIN_PASSWORD:
        raise KeyProblem(f"the password must be at least {MIN_PASSWORD} characters")
    if session.execute(select(UserAccount.id).where(UserAccount.name == name)).first():
        raise KeyProblem(f"there is already an account {name!r}")
    site_row = get_or_create_site(session, site) if site else None
    account = UserAccount(name=name, passwordHash=_HASHER.hash(password), role=role,
                          siteId=site_row.id if site_row else None, disabled=False,
                          failedLogins=0, created=utcnow())
    session.add(account)
    session.flush()
    return account


def list_accounts(session: Session) -> list[AccountInfo]:
    rows = session.execute(select(UserAccount, Site.name).outerjoin(
        Site, Site.id == UserAccount.siteId).order_by(UserAccount.name))
    return [AccountInfo(a.name, a.role, site, a.disabled, a.lockedUntil, a.lastLogin)
            for a, site in rows]


def disable_account(session: Session, name: str) -> None:
    account = session.execute(select(UserAccount).where(UserAccount.name == name)
                              ).scalar_one_or_none()
    if account is None:
        raise KeyProblem(f"there is no account {name!r}; 'cogent-rest users list' shows them")
    account.disabled = True


def check_password(session: Session, name: str, password: str) -> UserAccount:
    """The account, if ``password`` is its password and it may log in; LoginRefused else.
    The caller commits, also when this raises (a failed attempt is counted)."""
    now = utcnow()
    account = session.execute(select(UserAccount).where(UserAccount.name == name)
                              ).scalar_one_or_none()
    if account is None:
        _HASHER.hash(password)  # as long as a real check: no timing hint that it is unknown
        raise LoginRefused("wrong account name or password")
    if account.lockedUntil is not None and account.lockedUntil > now:
        wait = int((account.lockedUntil - now).total_seconds()) + 1
        raise LoginRefused(f"too many wrong passwords: this account is locked for {wait} s more",
                           status=429, retry_after=wait)
    try:
        _HASHER.verify(account.passwordHash, password)
    except (VerificationError, InvalidHashError):
        account.failedLogins += 1
        if account.failedLogins >= MAX_FAILURES:
            account.lockedUntil = now + LOCKOUT
            account.failedLogins = 0
        raise LoginRefused("wrong account name or password") from None
    if account.disabled:
        raise LoginRefused("this account is disabled; ask the server's operator", status=403)
    account.failedLogins = 0
    account.lockedUntil = None
    account.lastLogin = now
    return account


def login_for_key(session: Session, name: str, password: str) -> tuple[str, str]:
    """A new site key for the account's site, as (site name, key); the caller commits, also
    when this raises (a failed attempt is counted)."""
    account = check_password(session, name, password)
    if account.role != ROLE_SITE or account.siteId is None:
        raise LoginRefused("this account is not a base station's: only site accounts get keys "
                           "by logging in", status=403)
    site = session.get(Site, account.siteId)
    assert site is not None
    _, key = create_key(session, site.name, ROLE_SITE)
    return site.name, key
