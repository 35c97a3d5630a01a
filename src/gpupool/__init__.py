"""gpupool: elastic, multi-tenant GPU management for Ray.

``gpupool.Client`` (the SDK) is imported lazily, so ``import gpupool`` stays light and never
imports the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ApiError", "Client", "__version__"]

if TYPE_CHECKING:
    from gpupool.client import ApiError, Client


def __getattr__(name: str) -> Any:
    if name in ("Client", "ApiError"):
        from gpupool import client

        return getattr(client, name)
    raise AttributeError(f"module 'gpupool' has no attribute {name!r}")
