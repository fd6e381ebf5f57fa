"""`python app.py`: the web app's options, and building and launching the page (share link, login, MCP)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gradio as gr

    from .domain.config import Settings
    from .service.studio import Studio

__all__ = ["build", "main", "parse_args"]

MCP_MISSING = ("--mcp needs Gradio's MCP extra, which is not installed: pip install -r requirements.txt "
               '(or pip install "gradio[mcp]==6.31.0").')
# Gradio 6.31 serves /gradio_api/mcp/ without asking for the login, and its tool calls then fail behind it.
MCP_WITH_AUTH = ("--mcp cannot be combined with a login (--auth or NANOBANANA_AUTH): Gradio's MCP endpoint does not "
                 "ask for it. Serve MCP on 127.0.0.1 without a login, or behind a proxy that checks one.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are the defaults for host and port."""
    parser = argparse.ArgumentParser(description="Nano Banana Studio web app")
    parser.add_argument("--host", default=None, help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio share link")
    parser.add_argument("--offline", action="store_true", help="use the built-in emulator even with a key")
    parser.add_argument("--auth", action="append", metavar="USER:PASS",
                        help="require this login for the page, the API and the files (repeatable; "
                             "default: NANOBANANA_AUTH, e.g. user:pass,user2:pass2)")
    parser.add_argument("--mcp", action="store_true",
                        help="also serve /generate, /edit and /compose as MCP tools at /gradio_api/mcp/")
    return parser.parse_args(argv)


def fail(message: str, code: int = 2) -> SystemExit:
    """Print one line on stderr; the caller raises the returned SystemExit (no traceback)."""
    print(f"error: {message}", file=sys.stderr)
    return SystemExit(code)


def patch_mcp_tool_outputs() -> None:
    """Let MCP tool calls return their images and status: Gradio 6.31 fails on events with a gr.State output.

    The tools' events return (gallery, status, session State). Gradio's MCP server calls them through its own
    gradio_client, which returns the outputs as one tuple, then pops the State from the wrong list ("pop index out
    of range"). Here the tuple is unpacked, the State left out and the gallery's images listed one by one, so the
    agent receives each image (as an image and its URL) followed by the status text.
    """
    from gradio import mcp
    from gradio.components import State

    from .ui.components import gradio_patchable

    if not gradio_patchable("patch_mcp_tool_outputs"):
        return

    def pop_returned_state(components: list[Any], data: Any) -> list[Any]:
        if isinstance(data, list) and len(data) == 1 and isinstance(data[0], (tuple, list)) and len(components) > 1:
            data = list(data[0])  # the queued path: all the outputs in one tuple, the State as None
        if len(data) == len(components):
            data = [value for value, kind in zip(data, components, strict=True) if not isinstance(kind, State)]
        flat: list[Any] = []
        for value in data:
            if isinstance(value, list) and value and all(isinstance(v, dict) and "image" in v for v in value):
                flat.extend(v["image"] for v in value)
            else:
                flat.append(value)
        return flat

    mcp.GradioMCPServer.pop_returned_state = staticmethod(pop_returned_state)  # type: ignore[method-assign, assignment]
    # Gradio warns that MCP calls share one session State: here each call still returns only its own images.
    warnings.filterwarnings("ignore", "This MCP server includes a tool that has a gr.State input")


def load(args: argparse.Namespace) -> Settings:
    """The Settings for these options (--auth wins over NANOBANANA_AUTH); a bad value exits 2, as in the CLI."""
    from .domain.config import load_settings, parse_auth
    from .domain.errors import StudioError

    try:
        return load_settings({"offline": True if args.offline else None,
                              "auth": parse_auth(args.auth, "--auth") if args.auth else None})
    except StudioError as error:  # e.g. a login without a password: one line, no traceback
        raise fail(error.message, error.exit_code) from None


def build(args: argparse.Namespace, settings: Settings | None = None) -> tuple[gr.Blocks, Studio]:
    """The Studio and its page for these options; returns (demo, studio). Imports gradio, starts nothing."""
    # No network calls at start: Gradio's analytics are off unless the user asked for them (read at import).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Gradio 6's run history keeps every run's inputs (the visitor's API key too) in the browser's localStorage
    # and shows them on a "Runs" page: off, for launches other than main()'s (which passes run_history=False).
    os.environ["GRADIO_RUN_HISTORY"] = "False"
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")  # Gradio's per-event records: bounded lower
    from .domain.errors import StudioError
    from .service.studio import Studio
    from .ui import build_app

    try:
        studio = Studio(settings or load(args))
        if studio.settings.vertex and not studio.offline:
            _ = studio.vertex_access  # a Vertex setup problem stops the start with one line, not every request
    except StudioError as error:
        raise fail(error.message, error.exit_code) from None
    # The emulator and the API client start on the first request, not here (the Studio creates them lazily).
    return build_app(studio), studio  # the queue (bounded) and concurrency limits are set in build_app


def main(argv: list[str] | None = None) -> None:
    """Build and launch the app; serve until interrupted."""
    args = parse_args(argv)
    settings = load(args)
    from .domain.models import registry_warnings

    for warning in registry_warnings():  # a broken user models.json: the shipped registry is used, and we say so
        print(f"warning: {warning}", file=sys.stderr)
    if args.mcp and importlib.util.find_spec("mcp") is None:
        raise fail(MCP_MISSING)
    if args.mcp and settings.auth:
        raise fail(MCP_WITH_AUTH)
    # Gradio is imported only now (through ui/), so a bad option above fails in a blink rather than after seconds.
    demo, studio = build(args, settings)
    from .ui.sessions import launch_options
    from .ui.style import CSS

    if args.mcp:
        patch_mcp_tool_outputs()
    home = settings.home
    # Gradio serves only files it made or was allowed: the outputs folder holds the originals we show, and the
    # history's images/ and thumbs/ (files named by their SHA-256) what the History tab shows.
    # None for host and port lets Gradio apply GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, then its defaults.
    # max_file_size: 10 MB in public mode, else 50 (NANOBANANA_MAX_UPLOAD_MB); a larger upload gets HTTP 413.
    # launch_options: Gradio's threads sized to the generation pool (docs/crowds.md), sessions kept, upload size.
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options(settings),
                auth=list(settings.auth) or None, mcp_server=args.mcp, prevent_thread_lock=True,
                run_history=False,  # it would keep the typed API key in the browser (see build())
                css=CSS,  # the few rules Gradio's parameters cannot say (ui/style.py)
                allowed_paths=[str(settings.output_dir), str(home / "images"), str(home / "thumbs"),
                               str(home / "batches")])
    if args.share:
        if demo.share_url:
            print(f"Share link: {demo.share_url}" + ("" if settings.auth else
                  " (anyone with it can use this app and its key: add --auth user:pass to require a login)"))
        else:  # no internet, or Gradio's share server unreachable: Gradio said why just above
            print(f"No share link: it could not be created (no internet, or the share server is unreachable). "
                  f"Still serving locally at {demo.local_url}", flush=True)
    sys.stdout.flush()
    # `docker stop` sends SIGTERM, which PID 1 ignores unless handled: stop as on Ctrl-C (Gradio closes the server).
    signal.signal(signal.SIGTERM, interrupt)
    demo.block_thread()


def interrupt(signum: int, frame: object) -> None:
    """Turn SIGTERM into the KeyboardInterrupt Gradio's block_thread() handles."""
    raise KeyboardInterrupt
