"""The Store protocol, and the SQLite implementation that is the embedded default."""

from __future__ import annotations

from .base import SourceState, Store, StoryLink
from .sqlite import SQLiteStore

__all__ = ["SQLiteStore", "SourceState", "Store", "StoryLink"]
