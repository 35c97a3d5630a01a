"""gpupool: elastic, multi-tenant GPU management for Ray."""

__version__ = "0.1.0"
