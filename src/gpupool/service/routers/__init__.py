"""HTTP routers: parse, authenticate, call the control plane, serialise. No logic of their own."""
