"""API keys: created once, shown once, stored as SHA-256 only.

Keys are ``cgk_`` followed by 43 random URL-safe characters (256 bits), so a
plain SHA-256 cannot be brute-forced and lookups stay one indexed equality.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ROLES, ApiKey, Site
from models.access import ROLE_ADMIN, ROLE_READONLY, ROLE_SITE
from models.sql import utcnow

KEY_PREFIX = "cgk_"
KEY_PATTERN = re.compile(r"^cgk_[A-Za-z0-9_\-]{32,128}$")
SHOWN_PREFIX_CHARS = 12


class KeyProblem(Exception):
    """A key operation that cannot be done (unknown id, bad role...)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and site."""

    key_id: int
    role: str
    site_id: int | None
    site_name: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN

    @property
    def is_site(self) -> bool:
        return self.role == ROLE_SITE

    @property
    def can_write(self) -> bool:
        return self.role in (ROLE_ADMIN, ROLE_SITE)

    @property
    def sees_everything(self) -> bool:
        return self.role in (ROLE_ADMIN, ROLE_READONLY)


class AuthFailed(Exception):
    """The Authorization header does not carry a usable key; the message says why."""


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("ascii")).hexdigest()


def get_or_create_site(session: Session, name: str) -> Site:
    site = session.execute(select(Site).where(Site.name == name)).scalar_one_or_none()
    if site is None:
        site = Site(name=name, created=utcnow())
        session.add(site)
        session.flush()
    return site


def create_key(session: Session, site: str | None, role: str = ROLE_SITE) -> tuple[ApiKey, str]:
    """Create a key; return the row and the plaintext, which is not stored anywhere.

    The caller commits. A site key needs a site; admin and read-only keys may have one.
    """
    if role not in ROLES:
        raise KeyProblem(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if role == ROLE_SITE and not site:
        raise KeyProblem("a site key needs a site: pass --site NAME (one name per base station)")
    site_row = get_or_create_site(session, site) if site else None
    plaintext = generate_key()
    key = ApiKey(
        siteId=site_row.id if site_row else None,
        role=role,
        prefix=plaintext[:SHOWN_PREFIX_CHARS],
        keyHash=hash_key(plaintext),
        created=utcnow(),
    )
    session.add(key)
    session.flush()
    return key, plaintext


def revoke_key(session: Session, key_id: int) -> ApiKey:
    """Mark a key revoked (it stays listed). The caller commits."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise KeyProblem(f"no key with id {key_id}; 'cogent-rest keys list' shows the ids")
    if key.revoked is None:
        key.revoked = utcnow()
    session.flush()
    return key


@dataclass(frozen=True)
class KeyInfo:
    key: ApiKey
    site: str | None


def list_keys(session: Session, site: str | None = None) -> list[KeyInfo]:
    stmt = select(ApiKey, Site.name).outerjoin(Site, Site.id == ApiKey.siteId).order_by(ApiKey.id)
    if site is not None:
        stmt = stmt.where(Site.name == site)
    return [KeyInfo(key, name) for key, name in session.execute(stmt).all()]


def parse_authorization(header_value: str | None) -> str:
    """The key from ``Authorization: Bearer <key>``, or from HTTP Basic, where it is the
    password (the original Cogent-house client sends whatever credentials its ``resturl``
    holds: ``http://SITE:KEY@host/rest/``); AuthFailed says what is wrong."""
    if not header_value:
        raise AuthFailed("this needs a key: send 'Authorization: Bearer <key>'")
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() == "basic" and token.strip():
        token = _basic_password(token.strip())
    elif scheme.lower() != "bearer" or not token.strip():
        raise AuthFailed("malformed Authorization header: use 'Authorization: Bearer <key>'")
    token = token.strip()
    if not KEY_PATTERN.match(token):
        raise AuthFailed(
            "malformed key: keys look like cgk_ followed by 43 characters; "
            "ask the server's operator for one ('cogent-rest keys create')"
        )
    return token


def _basic_password(encoded: str) -> str:
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(
            ":")
    except (ValueError, UnicodeDecodeError):
        raise AuthFailed("malformed Basic credentials: put the key in the URL as "
                         "http://SITE:KEY@host/rest/, or send 'Authorization: Bearer <key>'"
                         ) from None
    if not sep:
        raise AuthFailed("Basic credentials need a password: the key, as in "
                         "http://SITE:KEY@host/rest/")
    return password or user


def authenticate(session: Session, header_value: str | None) -> tuple[ApiKey, Principal]:
    """Check the header's key; return the key row and who it is, or raise AuthFailed."""
    token = parse_authorization(header_value)
    row = session.execute(
        select(ApiKey, Site.name)
        .outerjoin(Site, Site.id == ApiKey.siteId)
        .where(ApiKey.keyHash == hash_key(token))
    ).first()
    if row is None:
        raise AuthFailed("unknown key: check the apikey setting, or ask for a new key")
    key, site_name = row
    if key.revoked is not None:
        raise AuthFailed(
            f"key {key.prefix}… was revoked on {key.revoked:%Y-%m-%d %H:%M} UTC; "
            f"ask the server's operator for a new one"
        )
    return key, Principal(key.id, key.role, key.siteId, site_name)
