"""`chatgate export` and `chatgate import`: a project's logs as JSON Lines."""

from __future__ import annotations
