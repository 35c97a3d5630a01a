"""The alembic migrations of the control plane's database, run by ``Database.migrate``."""
