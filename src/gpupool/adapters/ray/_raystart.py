"""``python -m gpupool.adapters.ray._raystart ARGS``: ``ray start ARGS`` with every node on 127.0.0.1.

On Linux, Ray turns a loopback address into the machine's own IP, assuming a multi-machine
cluster; the local cluster keeps everything on 127.0.0.1 instead. Its processes run with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (inherited by Ray's workers and the jobs' drivers,
which then resolve 127.0.0.1 to itself). That setting would also refuse to start a worker
node, so this launcher allows multi-node here and keeps loopback addresses as given, then runs
Ray's own CLI.
"""

from __future__ import annotations

import sys

from ray._private import ray_constants, services
from ray.scripts.scripts import main

_resolve = services.resolve_ip_for_localhost


def _keep_loopback(host: str) -> str:
    return host if host in ("127.0.0.1", "localhost") else _resolve(host)


ray_constants.ENABLE_RAY_CLUSTER = True
services.resolve_ip_for_localhost = _keep_loopback

if __name__ == "__main__":
    sys.argv[0] = "ray"
    sys.exit(main())
