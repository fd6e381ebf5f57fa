#!/bin/sh
# The container's steps: install, start and health check. The Dockerfile RUNs `install` from here, and its CMD and
# HEALTHCHECK are the commands of `start` and `healthcheck` below, word for word. There is no Docker engine on our
# machines, so tests/test_deploy.py proves these steps in a fresh venv and checks that the two files agree.
# Run from the app's folder, with the Python to use first on PATH.
set -eu
case "${1:-}" in
  install) python -m pip install --no-cache-dir -r requirements.txt ;;
  start) exec python app.py ;;
  healthcheck) exec python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('GRADIO_SERVER_PORT', '7860'), timeout=4)" ;;
  *) echo "usage: $0 install|start|healthcheck" >&2; exit 2 ;;
esac
