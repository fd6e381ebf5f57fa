# Nano Banana Studio in a container (also a Hugging Face Docker Space): port 7860, user uid 1000, data in /data.
#   docker build -t nanobanana .
#   docker run -p 7860:7860 -v nanobanana-data:/data -e NANOBANANA_PUBLIC=1 nanobanana
# The install and start steps live in scripts/container-setup.sh, which tests run in a fresh venv.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    NANOBANANA_HOME=/data

RUN useradd --create-home --uid 1000 user && mkdir -p /data && chown user:user /data

WORKDIR /app
COPY requirements.txt ./
COPY scripts/container-setup.sh scripts/
RUN sh scripts/container-setup.sh install
COPY --chown=user:user . .

USER user
VOLUME /data
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('GRADIO_SERVER_PORT', '7860'), timeout=4)"]
CMD ["python", "app.py"]
