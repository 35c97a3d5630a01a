"""The Ray adapter: a local multi-node Ray cluster with logical GPUs, and the executor on Ray.

* ``cluster``: ``LocalRayCluster`` (``ray start`` processes on this machine, one per node, each
  declaring logical GPUs of a named type) and ``parse_cluster_spec``; it records itself in the
  data dir so that a restarted control plane adopts it (``procs``, ``_watchdog``).
* ``provider``: ``LocalRayProvider``, the autoscaler's node provider on the local cluster.
* ``executor``: ``RayExecutor``, the engine's Executor port on any Ray cluster.
* ``supervisor``: the per-workload Ray actor that runs a workload's entrypoint.
* ``naming``: how gpupool names, pins and recognises things in Ray (shared by all three).

Only this package (and ``gpupool.runtime``, lazily) imports ``ray``.
"""
