"""The wire layer: domain values to and from their protobuf messages (minga.v1), shared by
the broker's API, the agent and the CLI, so each mapping is written once.

One module per message family (enums, jobs, sites, runs, the agent's stream, lending,
shares, and the admin's answers: accounts, audit, leadership, quotas, usage); each function
is `X_to_pb` or `X_from_pb`. A message the broker refuses raises InvalidArgument with the
field named.
"""
