"""The HTTP API (Litestar): thin handlers over nexus's services, errors mapped to HTTP in one place."""
