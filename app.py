"""Entry point for `python app.py`, Hugging Face Spaces and the container: build the Studio UI and launch it.

Options (see `python app.py --help` and nanobanana_ui/webapp.py): --host, --port, --share, --offline,
--auth USER:PASS (or NANOBANANA_AUTH), --mcp.
"""

from __future__ import annotations

from nanobanana_ui.webapp import build, main, parse_args

__all__ = ["build", "main", "parse_args"]

if __name__ == "__main__":
    main()
