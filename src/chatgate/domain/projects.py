"""Rows of projects, sessions, model configs, environments and deployments."""

from __future__ import annotations
