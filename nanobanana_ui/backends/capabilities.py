"""What each backend can do (Gemini API or Vertex AI): the options, services and leniencies that differ between them.

Front ends draw their controls from `Studio.capabilities`, and the Studio refuses, before any call, an option the
backend does not offer, with a message that says where it exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.errors import UnsupportedOptionError
from ..domain.request import ImageOptions

__all__ = ["GEMINI_API", "PERSON_GENERATION", "VERTEX_AI", "BackendCapabilities", "capabilities_for"]

PERSON_GENERATION = ("ALLOW_ALL", "ALLOW_ADULT", "ALLOW_NONE")  # Vertex's imageConfig.personGeneration values
_VERTEX_HINT = "set NANOBANANA_BACKEND=vertex with a Google Cloud project (docs/vertex.md)"


@dataclass(frozen=True)
class BackendCapabilities:
    """One backend's differences; the model registry still says what each model offers."""

    name: str  # "gemini" or "vertex"
    label: str
    output_mime_types: tuple[str, ...]  # what imageConfig may ask for (the first is what comes back by default)
    output_quality: bool  # JPEG compression quality (imageOutputOptions.compressionQuality)
    person_generation: tuple[str, ...]  # allowed values; () when the backend has no such control
    files_api: bool  # client.files: uploads for large inputs and batch files
    batch_mode: bool  # Gemini Batch Mode (client.batches with inline requests)
    strict_thought_signatures: bool  # a multi-turn edit without its signatures is refused (400)

    def check_options(self, options: ImageOptions) -> None:
        """Refuse, before any call, an output option this backend does not offer (one line saying where it does)."""
        mime = options.output_mime_type
        if mime is not None and mime not in self.output_mime_types:
            if mime in VERTEX_AI.output_mime_types:
                raise UnsupportedOptionError(f"Output format {mime} is not available on {self.label}; it exists "
                                             f"only on Vertex AI: {_VERTEX_HINT}.")
            raise UnsupportedOptionError(f"Output format {mime!r} is not offered: choose "
                                         f"{' or '.join(self.output_mime_types)}.")
        if options.output_quality is not None:
            if not self.output_quality:
                raise UnsupportedOptionError(f"JPEG quality is not available on {self.label} (it always returns "
                                             f"PNG); it exists only on Vertex AI: {_VERTEX_HINT}.")
            if mime != "image/jpeg":
                raise UnsupportedOptionError("JPEG quality applies to JPEG output only: ask for image/jpeg too.")
            if not 0 <= options.output_quality <= 100:
                raise UnsupportedOptionError(f"JPEG quality must be between 0 and 100 (got {options.output_quality}).")
        person = options.person_generation
        if person is not None and person not in self.person_generation:
            if not self.person_generation:
                raise UnsupportedOptionError(f"Person generation controls are not available on {self.label}; "
                                             f"they exist only on Vertex AI: {_VERTEX_HINT}.")
            raise UnsupportedOptionError(f"Person generation must be one of {', '.join(self.person_generation)} "
                                         f"(got {person!r}).")

    def require_batch_mode(self) -> None:
        """Refuse Gemini Batch Mode where it does not exist."""
        if not self.batch_mode:
            raise UnsupportedOptionError(
                f"Gemini Batch Mode does not exist on {self.label}: Vertex batch prediction needs Cloud Storage or "
                "BigQuery and is not supported here. Run the batch without --gemini-batch (interactive calls at the "
                "rate limit), or use the Gemini API backend.")

    def require_files_api(self) -> None:
        """Refuse the Files API where it does not exist."""
        if not self.files_api:
            raise UnsupportedOptionError(f"The Files API does not exist on {self.label}: images are sent inline "
                                         "(up to about 7 MB each).")


GEMINI_API = BackendCapabilities(
    name="gemini", label="the Gemini API", output_mime_types=("image/png",), output_quality=False,
    person_generation=(), files_api=True, batch_mode=True, strict_thought_signatures=True)
VERTEX_AI = BackendCapabilities(
    name="vertex", label="Vertex AI", output_mime_types=("image/png", "image/jpeg"), output_quality=True,
    person_generation=PERSON_GENERATION, files_api=False, batch_mode=False, strict_thought_signatures=False)


def capabilities_for(backend: str) -> BackendCapabilities:
    """The capabilities of a backend by name ("gemini" or "vertex")."""
    return VERTEX_AI if backend == "vertex" else GEMINI_API
