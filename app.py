"""Entry point for `python app.py` and Hugging Face Spaces: build the Studio UI and launch it."""

from __future__ import annotations

import argparse
import os


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are the defaults for host and port."""
    parser = argparse.ArgumentParser(description="Nano Banana Studio web app")
    parser.add_argument("--host", default=None, help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio share link")
    parser.add_argument("--offline", action="store_true", help="use the built-in emulator even with a key")
    return parser.parse_args(argv)


def build(args: argparse.Namespace):
    """The Studio and its page for these options; returns (demo, studio). Imports gradio, starts nothing."""
    # No network calls at start: Gradio's analytics are off unless the user asked for them (read at import).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from nanobanana_ui.config import load_settings
    from nanobanana_ui.errors import StudioError
    from nanobanana_ui.studio import Studio
    from nanobanana_ui.ui import build_app

    try:
        studio = Studio(load_settings({"offline": True} if args.offline else None))
    except StudioError as error:
        raise SystemExit(f"error: {error.message}") from None
    # The emulator and the API client start on the first request, not here (the Studio creates them lazily).
    return build_app(studio), studio  # the queue (bounded) and concurrency limits are set in build_app


def main(argv: list[str] | None = None) -> None:
    """Build and launch the app."""
    args = parse_args(argv)
    demo, studio = build(args)
    # Gradio serves only files it made or was allowed: the outputs folder holds the originals we show, and the
    # history's images/ and thumbs/ (files named by their SHA-256) what the History tab shows.
    # None for host and port lets Gradio apply GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, then its defaults.
    home = studio.settings.home
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size="50mb",
                allowed_paths=[str(studio.settings.output_dir), str(home / "images"), str(home / "thumbs"),
                               str(home / "batches")])


if __name__ == "__main__":
    main()
