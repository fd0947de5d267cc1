"""Console users, tokens and sessions on SQLite and PostgreSQL: only hashes stored,
sessions that expire and end, tokens that revoke."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from headwater.errors import ConfigError
from headwater.state.db import open_state
from headwater.state.users import (
    SESSION_SECONDS,
    authenticate,
    console_sessions,
    create_token,
    create_user,
    end_session,
    revoke_tokens,
    session_for,
    set_password,
    start_session,
    user_for_token,
)


def test_users_sessions_and_tokens(state_url):
    engine = open_state(state_url)
    ada = create_user(engine, "ada", "a long password")
    with pytest.raises(ConfigError):
        create_user(engine, "ada", "another long one")
    assert authenticate(engine, "ada", "a long password") == ada
    assert authenticate(engine, "ada", "a long passwore") is None
    assert authenticate(engine, "nobody", "a long password") is None
    sid, session = start_session(engine, ada, now=1000.0)
    with engine.connect() as conn:
        stored = conn.execute(select(console_sessions.c.id_hash)).scalar_one()
    assert stored != sid and len(stored) == 64  # only the hash is kept
    assert session_for(engine, sid, now=1001.0).csrf == session.csrf
    assert session_for(engine, sid, now=1000.0 + SESSION_SECONDS + 1) is None
    assert session_for(engine, "x" * 10_000) is None
    end_session(engine, sid)
    assert session_for(engine, sid, now=1001.0) is None
    sid, _ = start_session(engine, ada)
    set_password(engine, "ada", "a new long password")  # ends open sessions
    assert session_for(engine, sid) is None
    token = create_token(engine, "ada")
    assert user_for_token(engine, token) == ada
    assert user_for_token(engine, token + "x") is None
    assert user_for_token(engine, {"$ne": None}) is None  # type: ignore[arg-type]
    assert revoke_tokens(engine, "ada") == 1
    assert user_for_token(engine, token) is None
    engine.dispose()
