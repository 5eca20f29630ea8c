"""What one server process holds for its lifetime (built in app.py's lifespan)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from chatgate.services.auth import Authenticator
from chatgate.services.chat import ChatService
from chatgate.settings import Settings
from chatgate.store.sql import Store
from chatgate.store.writer import LogWriter


@dataclass(slots=True)
class AppState:
    settings: Settings
    store: Store
    writer: LogWriter
    http: aiohttp.ClientSession
    auth: Authenticator
    chat: ChatService
