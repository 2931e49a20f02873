"""The HTTP routers, one per resource or special endpoint."""
