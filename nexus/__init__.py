"""Nexus: product analytics on ClickHouse."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nexus-analytics")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
