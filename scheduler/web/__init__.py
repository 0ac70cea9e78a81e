"""The broker's web dashboard (`--web-listen`, docs/dashboard.md): server-rendered pages for
admins and researchers, scoped by the same authorization table as the gRPC API."""
