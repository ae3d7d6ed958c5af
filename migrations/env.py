"""Alembic environment: `billing-sync db upgrade` passes its engine; plain `alembic` reads DATABASE_URL."""

from alembic import context

from billing_sync.config import DEFAULT_DATABASE_URL, Settings
from billing_sync.db import make_engine
from billing_sync.models import Base

config = context.config
target_metadata = Base.metadata


def _engine():
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    import os

    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    return make_engine(Settings.__dataclass_fields__["database_url"].metadata["parse"]("DATABASE_URL", url))


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `billing-sync db upgrade`")
run_migrations_online()
