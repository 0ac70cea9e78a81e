"""The minga broker: pure policy, store, scheduling cycle and gRPC servicers."""
