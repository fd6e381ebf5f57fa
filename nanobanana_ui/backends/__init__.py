"""Backends: the Gemini API and Vertex AI over google-genai, the transport seam, model discovery."""
