"""The `minga` command line: thin typer commands wired to a typed gRPC client.

No business logic lives here; the broker decides, the CLI asks and shows.
"""
