"""The gRPC edge of the broker: one interceptor (authentication, the RPC table, errors)
and thin servicers over the wire layer (minga.common.wire)."""
