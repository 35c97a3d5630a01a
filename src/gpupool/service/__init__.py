"""The live control plane: FastAPI + SQLAlchemy around the engine's one driver loop.

Layout: ``settings`` (ServiceSettings), ``models``/``db`` (ORM, engine, alembic migrations run at
startup), ``journal`` (the engine's Journal port on the database), ``security`` (hashed API
tokens, ACL checks), ``plane`` (the use cases: submit, cancel, why, recovery; the driver thread),
``metrics`` (Prometheus), ``routers`` (thin HTTP layer), ``app`` (``create_app``) and ``runner``
(``gpupool up``). Importing this package does not import Ray: the Ray adapter is loaded lazily by
the runner.
"""
