"""The engine: the one driver loop shared by live mode and the simulator, and its ports."""
