"""The `minga` command line: thin typer commands wired to a typed gRPC client.

No business logic lives here; the broker decides, the CLI asks and shows.
"""

import os

# gRPC's C core logs every failed TLS handshake at INFO on stderr (a client that left
# out --ca shows up as `ssl_transport_security.cc ... WRONG_VERSION_NUMBER` lines in
# the broker's console). Its errors still show; an operator's own setting wins.
# This has to happen before grpc is first imported, which every command does.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
