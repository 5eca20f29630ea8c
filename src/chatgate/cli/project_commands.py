"""`chatgate environments ...`: deployment environments of an organisation."""

from __future__ import annotations
