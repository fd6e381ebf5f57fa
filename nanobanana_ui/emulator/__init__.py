"""Offline Gemini API emulator: a local HTTP stand-in for generateContent that the app and tests talk to."""

from .faults import Fault
from .quota import busiest_window
from .server import OFFLINE_API_KEY, GeminiEmulator, shared_emulator
from .types import RecordedPart, RecordedRequest, RecordedTurn

__all__ = ["OFFLINE_API_KEY", "Fault", "GeminiEmulator", "RecordedPart", "RecordedRequest", "RecordedTurn",
           "busiest_window", "shared_emulator"]
