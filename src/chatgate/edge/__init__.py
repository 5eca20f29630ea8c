"""The HTTP edge: how connections are accepted, limited and refused before the application.

``protocol.py`` is uvicorn's httptools protocol with per-connection limits and v4-shaped answers;
``config.py`` builds and runs the uvicorn server with it (the server process and the tests share
``server_config``).
"""

from chatgate.edge.config import Limits, raise_fd_limit, serve, server_config

__all__ = ["Limits", "raise_fd_limit", "serve", "server_config"]
