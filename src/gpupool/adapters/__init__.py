"""Adapters: the edges of gpupool, one per outside system, each the only place that imports its library.

``gpupool.adapters.ray`` runs admitted workloads on a Ray cluster (and starts a local one).
"""
