"""The wire layer: domain values to and from their protobuf messages (minga.v1), shared by
the broker's API, the agent and the CLI, so each mapping is written once."""
