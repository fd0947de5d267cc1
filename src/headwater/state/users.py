"""Console users, their API tokens and their login sessions.

Passwords are hashed with scrypt (standard library, memory-hard: a stolen state file does
not give the passwords away cheaply); tokens and session ids are random and stored as
SHA-256 hashes only, so the table alone lets nobody in. A session carries its own CSRF
token, checked on every console POST. A read-only user sees every page and acts on none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)

from headwater.errors import ConfigError
from headwater.state.db import metadata

TOKEN_PREFIX = "hwu_"
SESSION_SECONDS = 12 * 3600.0  # a login lasts a working day
MIN_PASSWORD_CHARS = 10
# scrypt cost: 16 MiB and ~50 ms per check, enough to make guessing a stolen hash slow.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

console_users = Table(
    "console_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("read_only", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

console_tokens = Table(
    "console_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("console_users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_hint", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("console_users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    read_only: bool


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    expires_at: float


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 2**20
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 2**20,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = None  # checked against when the name is unknown, so timing says nothing


def _user(row) -> User:
    return User(id=row.id, name=row.name, read_only=bool(row.read_only))


def create_user(engine: Engine, name: str, password: str, *, read_only: bool = False) -> User:
    """Add a console user; a name already taken or a short password is a ConfigError."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ConfigError("a user needs a name (at most 200 characters)")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    with engine.begin() as conn:
        if conn.execute(select(console_users.c.id).where(console_users.c.name == name)).first():
            raise ConfigError(f"a user named {name!r} exists already")
        new_id = conn.execute(
            insert(console_users).values(
                name=name,
                password_hash=hash_password(password),
                read_only=read_only,
                created_at=time.time(),
            )
        ).inserted_primary_key[0]
    return User(int(new_id), name, read_only)


def set_password(engine: Engine, name: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    with engine.begin() as conn:
        done = conn.execute(
            update(console_users)
            .where(console_users.c.name == name)
            .values(password_hash=hash_password(password))
        )
        if not done.rowcount:
            raise ConfigError(f"no user named {name!r}")
        user_id = select(console_users.c.id).where(console_users.c.name == name).scalar_subquery()
        conn.execute(delete(console_sessions).where(console_sessions.c.user_id == user_id))


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        return [_user(r) for r in conn.execute(select(console_users).order_by(console_users.c.id))]


def delete_user(engine: Engine, name: str) -> bool:
    with engine.begin() as conn:
        row = conn.execute(select(console_users).where(console_users.c.name == name)).first()
        if row is None:
            return False
        for table in (console_sessions, console_tokens):
            conn.execute(delete(table).where(table.c.user_id == row.id))
        conn.execute(delete(console_users).where(console_users.c.id == row.id))
    return True


def authenticate(engine: Engine, name: str, password: str) -> User | None:
    """The user when ``password`` is theirs; an unknown name costs the same hash."""
    global _DUMMY_HASH
    with engine.connect() as conn:
        row = conn.execute(select(console_users).where(console_users.c.name == name)).first()
    if row is None:
        _DUMMY_HASH = _DUMMY_HASH or hash_password(secrets.token_hex(8))
        check_password(password, _DUMMY_HASH)
        return None
    return _user(row) if check_password(password, row.password_hash) else None


def create_token(engine: Engine, name: str) -> str:
    """A new API token for user ``name``; the plain token is returned once, never stored."""
    with engine.begin() as conn:
        row = conn.execute(select(console_users).where(console_users.c.name == name)).first()
        if row is None:
            raise ConfigError(f"no user named {name!r}")
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        conn.execute(
            insert(console_tokens).values(
                user_id=row.id,
                token_hash=_sha(plain),
                token_hint=plain[: len(TOKEN_PREFIX) + 4],
                created_at=time.time(),
            )
        )
    return plain


def revoke_tokens(engine: Engine, name: str) -> int:
    """Revoke every token of user ``name``; returns how many."""
    user_id = select(console_users.c.id).where(console_users.c.name == name).scalar_subquery()
    with engine.begin() as conn:
        return conn.execute(
            update(console_tokens)
            .where(console_tokens.c.user_id == user_id, console_tokens.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        ).rowcount


def user_for_token(engine: Engine, plain: str | None) -> User | None:
    if not isinstance(plain, str) or not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    query = (
        select(console_users)
        .join(console_tokens, console_tokens.c.user_id == console_users.c.id)
        .where(console_tokens.c.token_hash == _sha(plain), console_tokens.c.revoked_at.is_(None))
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return _user(row) if row is not None else None


def start_session(engine: Engine, user: User, *, now: float | None = None) -> tuple[str, Session]:
    """A new session for ``user``: the cookie value (returned once) and its record."""
    now = time.time() if now is None else now
    sid = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + SESSION_SECONDS
    with engine.begin() as conn:
        conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
        conn.execute(
            insert(console_sessions).values(
                id_hash=_sha(sid), user_id=user.id, csrf=csrf, expires_at=expires
            )
        )
    return sid, Session(user, csrf, expires)


def session_for(engine: Engine, sid: str | None, *, now: float | None = None) -> Session | None:
    if not isinstance(sid, str) or not sid or len(sid) > 200:
        return None
    now = time.time() if now is None else now
    query = (
        select(console_users, console_sessions.c.csrf, console_sessions.c.expires_at)
        .join(console_sessions, console_sessions.c.user_id == console_users.c.id)
        .where(console_sessions.c.id_hash == _sha(sid), console_sessions.c.expires_at > now)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else Session(_user(row), row.csrf, row.expires_at)


def end_session(engine: Engine, sid: str | None) -> None:
    if sid:
        with engine.begin() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == _sha(sid)))
