"""Engine and session setup, SQLite pragmas, and the unit-of-work helpers.

Writers on SQLite open their transaction with `BEGIN IMMEDIATE`, so two writers never
both read and then race to upgrade to a write lock: the second waits (busy timeout) for
the first to commit. Readers use ordinary deferred transactions and never block writers
(WAL). On PostgreSQL both are plain READ COMMITTED transactions; code that must
serialise takes row locks (`SELECT ... FOR UPDATE`).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from json.encoder import encode_basestring_ascii
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_S = 30


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`: SQLite in WAL mode with durable commits, or psycopg 3."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    else:
        engine = create_engine(url, pool_size=5, max_overflow=10, **kwargs)
    # A forked worker (gunicorn with preload) must not reuse the parent's connections.
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return engine


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN, not pysqlite's implicit one.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before we acknowledge it; money outlives power cuts.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(connection) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def rows_json(rows: list[dict]) -> str:
    """The rows as one JSON array: one parameter, parsed by the server in C."""
    return json.dumps(rows, separators=(",", ":"), default=_isoformat)


def json_value(value) -> str:
    """`json.dumps` of one value, without its machinery for the texts, integers and nulls
    that rendered rows are made of (ASCII-escaped, as `json.dumps`)."""
    if type(value) is str:
        return encode_basestring_ascii(value)
    if type(value) is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    return json.dumps(value)


def _isoformat(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to the database as JSON")


_WITH_COMMIT = "billing_sync.with_commit"


def send_with_commit(connection: Connection, sql: str, params: dict) -> bool:
    """Have `sql` sent with this transaction's COMMIT, in one round trip; False when it cannot be.

    Only a `Database.transaction()` on PostgreSQL can, and only one statement per
    transaction: the caller runs the statement itself when this answers False. A failing
    statement fails the commit, and the transaction rolls back as usual.
    """
    pending = connection.info.get(_WITH_COMMIT)
    if pending is None or pending:
        return False
    pending.append((sql, params))
    return True


def send_pending(connection: Connection) -> None:
    """Run now the statement waiting for the commit, if any (something must see its effect)."""
    pending = connection.info.get(_WITH_COMMIT)
    if pending:
        sql, params = pending.pop()
        connection.connection.cursor().execute(sql, params)


def _commit_with(connection: Connection, pending: list[tuple[str, dict]]) -> None:
    if not pending:
        return
    (sql, params), = pending
    driver = connection.connection.driver_connection
    with driver.pipeline():  # the statement and the COMMIT in one round trip
        driver.cursor().execute(sql, params)
        driver.commit()


class WriterLock:
    """Queues SQLite writers: a thread lock within the process, an OS file lock across processes.

    SQLite's own busy handler makes a blocked writer sleep and poll (1 ms, 2 ms, 5 ms, ...);
    two gunicorn workers committing small transactions would spend most of their time
    asleep. A blocking `flock` wakes the next writer the moment the previous one is done.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread_lock = threading.Lock()
        self._file = None
        self._pid = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            handle = self._handle()
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _handle(self):
        # A forked child must not share the parent's open file description (one flock for both).
        if self._file is None or self._pid != os.getpid():
            self._file = open(self._path, "a+b")  # noqa: SIM115 - kept open for the process
            self._pid = os.getpid()
        return self._file


class Database:
    """The engine, session factories for the ORM, and Core transactions for hot paths."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write_engine = engine.execution_options(sqlite_begin="IMMEDIATE") if is_sqlite(engine) else engine
        self._writer = sessionmaker(self._write_engine, expire_on_commit=False)
        self._reader = sessionmaker(engine, expire_on_commit=False)
        database = engine.url.database if is_sqlite(engine) else None
        self._writer_lock = WriterLock(Path(f"{database}.writer-lock")) if database and database != ":memory:" else None

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One ORM unit of work: commit on success, roll back on any exception."""
        with self._serialised(), self._writer() as session, session.begin():
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One Core unit of work, for hot paths that need no ORM: commit or roll back.

        On PostgreSQL the last statement may ride with the COMMIT (`send_with_commit`).
        """
        with self._serialised(), self._write_engine.begin() as connection:
            if is_sqlite(self.engine):
                yield connection
                return
            connection.info[_WITH_COMMIT] = []
            try:
                yield connection
                _commit_with(connection, connection.info[_WITH_COMMIT])
            finally:
                connection.info.pop(_WITH_COMMIT, None)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; closing it ends its transaction, loaded rows stay usable."""
        with self._reader() as session:
            yield session

    def _serialised(self):
        return self._writer_lock.held() if self._writer_lock else nullcontext()

    def dispose(self) -> None:
        self.engine.dispose()
