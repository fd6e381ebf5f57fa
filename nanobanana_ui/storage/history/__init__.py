"""The persistent history: every request in SQLite under NANOBANANA_HOME, its images stored once by content."""

from .entries import HistoryEntry, HistoryImage
from .store import HistoryStore

__all__ = ["HistoryEntry", "HistoryImage", "HistoryStore"]
