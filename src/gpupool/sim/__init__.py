"""Discrete-event simulation: the same driver and scheduling core replaying traces."""
