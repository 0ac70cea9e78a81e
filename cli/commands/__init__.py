"""One module per command group; each module exposes a typer app or plain commands."""
