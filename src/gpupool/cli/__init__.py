"""The ``gpupool`` command line (typer + rich)."""
