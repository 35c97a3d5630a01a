"""Alembic environment: runs on the connection the service hands over (``Database.migrate``)."""

from __future__ import annotations

from alembic import context

from gpupool.service.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("gpupool migrations run through gpupool.service.db.Database.migrate()")
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
