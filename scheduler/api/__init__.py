"""The gRPC edge of the broker: thin servicers, converters, authorization.

Only this package imports the generated `_pb2` modules.
"""
