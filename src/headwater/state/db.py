"""One way to open the state store: SQLite (WAL) by default, PostgreSQL by URL.

Each state module declares its tables on the shared ``metadata``; ``open_state`` creates
what is missing, so a fresh project needs no migration step. A table that only one kind
of store uses says so in ``info={"dialects": {...}}``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from sqlalchemy import Engine, MetaData, create_engine, event, inspect
from sqlalchemy.exc import SQLAlchemyError

from headwater.errors import ConfigError, FatalError, HeadwaterError

log = logging.getLogger("headwater.state")

metadata = MetaData()

# With checkpoints in the background, a writer still checkpoints itself past this many WAL
# pages (80 MB), so the log stays bounded if the background thread falls behind.
BACKGROUND_WAL_PAGES = 20_000
CHECKPOINT_SECONDS = 0.25
# Passive checkpoints never rewind the log while writers keep appending; past this many
# frames (16 MB) one restart checkpoint (a brief pause for writers: the frames left to copy
# are only those since the last passive one) lets the next writer start the log over.
RESTART_WAL_FRAMES = 4_000
# How long a restart checkpoint waits for readers on an older snapshot before it settles
# for a passive one (and lets the writers go): a reader's long query (the Currents landing
# reading a landing's batches, at a low CPU priority) held intake commits 200-430 ms.
RESTART_WAIT_MS = 20


def _sqlite_pragmas(dbapi_connection, _record, *, wal_pages: int | None = None) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    if wal_pages is not None:
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_pages)}")
    cursor.close()


class WalCheckpointer:
    """Copies a SQLite store's write-ahead log into the database from its own thread.

    By default SQLite checkpoints inside the commit that crosses 1,000 WAL pages, while
    holding the only write lock: under the gateway's load that was most of a commit's cost
    and every waiting request paid it. A passive checkpoint here runs beside the writers
    instead (it never blocks them)."""

    def __init__(
        self,
        engine: Engine,
        interval: float = CHECKPOINT_SECONDS,
        run_with_writers: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        self.engine = engine
        self.interval = interval
        # The restart checkpoint locks writers out while it runs; given the writers' own
        # thread it runs in turn with them instead of making them sleep in SQLite's busy
        # handler (whose waits round up to 25-100 ms).
        self.run_with_writers = run_with_writers or (lambda fn: fn())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def _run(self) -> None:
        connection = self.engine.raw_connection()
        try:
            connection.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
            while not self._stop.wait(self.interval):
                try:
                    _busy, frames, _copied = connection.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    if frames >= RESTART_WAL_FRAMES:
                        self.run_with_writers(
                            lambda: connection.execute("PRAGMA wal_checkpoint(RESTART)")
                        )
                except Exception as exc:  # a busy store: the next round tries again
                    log.debug("WAL checkpoint skipped: %s", type(exc).__name__)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and route them to psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_state_engine(url: str, *, background_checkpoints: bool = False) -> Engine:
    """An engine for ``url``. ``background_checkpoints`` (SQLite): writers leave WAL
    checkpoints to a ``WalCheckpointer`` the caller runs."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        wal_pages = BACKGROUND_WAL_PAGES if background_checkpoints else None
        event.listen(
            engine,
            "connect",
            lambda conn, record: _sqlite_pragmas(conn, record, wal_pages=wal_pages),
        )
        return engine
    return create_engine(url, pool_pre_ping=True)


def display_url(url: str) -> str:
    """``url`` fit to print: its password masked (nothing but the scheme if unparseable)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://…"


def unreachable(what: str, url: str, exc: BaseException) -> FatalError:
    """One line for a database that cannot be opened: which one, and the driver's reason
    (its first line; never the password, even if a driver were to echo it)."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = detail[0] if detail else type(exc).__name__
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:
        password = None
    if password:
        reason = reason.replace(str(password), "***")
    return FatalError(f"{what}: cannot reach database {display_url(url)}: {reason}")


def open_state(url: str, *, background_checkpoints: bool = False) -> Engine:
    """Open (and create if needed) the state store at ``url``.

    A store that cannot be reached or opened is one FatalError naming it (password
    masked), not a driver traceback."""
    try:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_state_engine(url, background_checkpoints=background_checkpoints)
        with _schema_lock(engine):
            metadata.create_all(engine, tables=_tables_for(engine))
            _add_missing(engine)
        _check_columns(engine)
        _never_reuse_ids(engine)  # every column is there: the rows can be copied whole
    except HeadwaterError:
        raise
    except (OSError, SQLAlchemyError, ImportError) as exc:
        raise unreachable("state", url, exc) from None
    return engine


# Any fixed number: every Headwater process creating tables in one PostgreSQL database
# takes this advisory lock first.
_SCHEMA_LOCK = 0x68776174


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, one process at a time creates the tables: two processes starting
    together on a fresh database would both find a table missing, and the second CREATE
    fails on the type PostgreSQL makes for each table (duplicate key in pg_type). The lock
    is the session's, held across create_all's own transactions."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_lock({_SCHEMA_LOCK})")
        try:
            yield
        finally:
            conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_SCHEMA_LOCK})")
            conn.commit()


def _tables_for(engine: Engine) -> list:
    dialect = engine.dialect.name
    return [t for t in metadata.sorted_tables if dialect in t.info.get("dialects", {dialect})]


def _never_reuse_ids(engine: Engine) -> None:
    """Rebuild a SQLite table made without the AUTOINCREMENT its declaration now asks for
    (rows, ids and indexes kept, in one transaction): without it SQLite hands the ids of
    deleted rows out again, and ids that must follow order (the outbox's) stop doing so."""
    if engine.dialect.name != "sqlite":
        return
    for table in _tables_for(engine):
        if not table.dialect_kwargs.get("sqlite_autoincrement"):
            continue
        with engine.begin() as conn:
            ddl = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table.name,)
            ).scalar()
            if ddl is None or "AUTOINCREMENT" in ddl.upper():
                continue
            old = f"{table.name}__before_autoincrement"
            for index in table.indexes:
                conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{index.name}"')
            conn.exec_driver_sql(f'ALTER TABLE "{table.name}" RENAME TO "{old}"')
            table.create(conn)
            names = ", ".join(f'"{c.name}"' for c in table.columns)
            conn.exec_driver_sql(
                f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{old}"'
            )
            conn.exec_driver_sql(f'DROP TABLE "{old}"')
            log.info("state: %s rebuilt so its ids are never handed out twice", table.name)


def _add_missing(engine: Engine) -> None:
    """Bring a store made by an earlier version up to date where that is safe: its tables
    get the nullable columns (NULL in old rows), the counts (0 in old rows) and the
    indexes added since. A table missing any other column is left for ``_check_columns``.
    Columns and indexes are read in one pass each (per table, that was most of the time
    a PostgreSQL store took to open)."""
    found = inspect(engine)
    tables = _tables_for(engine)
    names = [t.name for t in tables]
    columns = {key[1]: cols for key, cols in found.get_multi_columns(filter_names=names).items()}
    indexes = {key[1]: ix for key, ix in found.get_multi_indexes(filter_names=names).items()}
    for table in tables:
        have = {c["name"] for c in columns.get(table.name, [])}
        added = []
        for column in (c for c in table.columns if c.name not in have):
            ddl = _added_column(engine, column)
            if ddl is None:
                added = None
                break
            added.append(ddl)
        if added is None:
            continue
        for ddl in added:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}')
        known = {i["name"] for i in indexes.get(table.name, [])}
        for index in table.indexes:
            if index.name not in known:
                index.create(engine, checkfirst=True)


def _added_column(engine: Engine, column) -> str | None:
    """The DDL adding ``column`` to a table with rows, or None when old rows have no value."""
    if column.server_default is not None:
        return None
    kind = column.type.compile(dialect=engine.dialect)
    default = column.default.arg if column.default is not None else None
    if column.nullable:
        return f'"{column.name}" {kind}'
    if isinstance(default, int) and not isinstance(default, bool):
        return f'"{column.name}" {kind} NOT NULL DEFAULT {default}'  # a count: 0 before
    return None


def _check_columns(engine: Engine) -> None:
    """Refuse a store whose tables predate columns this version needs, naming them,
    instead of failing later on the first statement that reads one."""
    tables = _tables_for(engine)
    found = inspect(engine).get_multi_columns(filter_names=[t.name for t in tables])
    columns = {key[1]: cols for key, cols in found.items()}
    stale = []
    for table in tables:
        have = {c["name"] for c in columns.get(table.name, [])}
        missing = [c.name for c in table.columns if c.name not in have]
        if missing:
            stale.append(f"{table.name} (missing {', '.join(missing)})")
    if stale:
        raise ConfigError(
            f"state: the store at {engine.url.render_as_string(hide_password=True)} was made "
            f"by an older Headwater: {'; '.join(stale)}. Deliver or export what it holds "
            "with that version, then move the file away (or use a new database)."
        )
