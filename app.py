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


def main(argv: list[str] | None = None) -> None:
    """Build and launch the app."""
    args = parse_args(argv)
    # No network calls at start: Gradio's analytics are off unless the user asked for them.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from nanobanana_ui.config import load_settings
    from nanobanana_ui.errors import StudioError
    from nanobanana_ui.studio import Studio
    from nanobanana_ui.ui import build_app

    try:
        studio = Studio(load_settings({"offline": True} if args.offline else None))
    except StudioError as error:
        raise SystemExit(f"error: {error.message}") from None
    demo = build_app(studio)
    # Gradio serves only files it made or was allowed: the outputs folder holds the originals we show.
    demo.queue(max_size=64).launch(server_name=args.host, server_port=args.port, share=args.share,
                                   allowed_paths=[str(studio.settings.output_dir)])


if __name__ == "__main__":
    main()
