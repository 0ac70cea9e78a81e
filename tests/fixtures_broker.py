"""Broker fixtures (real store files, real gRPC servers on port 0)."""
