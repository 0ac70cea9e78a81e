"""What commands do, apart from how their flags are declared (cli/commands/).

Modules here never import typer, so cli.fast can run them straight from the
command line without building the typer tree.
"""
