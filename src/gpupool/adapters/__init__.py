"""Adapters: the edges of gpupool, one per outside system, each the only place that imports its library.

``gpupool.adapters.ray`` runs admitted workloads on a Ray cluster (and starts a local one).
``jupyter_activity`` reads a notebook session's Jupyter server (busy kernels, last activity) and
``nvml`` its GPUs' utilisation, for the idle clock of ``gpupool.core.sessions``.
"""
