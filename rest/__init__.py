"""The central REST server: browsable resources, metadata mapping, bulk ingest, keys."""

from base import __version__

APPLICATION = "cogent-sync"

__all__ = ["APPLICATION", "__version__"]
