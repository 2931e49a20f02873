"""The base-station foundation: configuration, database engines, logging, ingest."""

__version__ = "0.1.0"
