"""chatgate: a self-hosted server that speaks Humanloop's v4 REST API."""

__version__ = "0.1.0"
