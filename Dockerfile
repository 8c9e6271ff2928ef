# Parley's ASGI worker image: `docker compose up` (docker-compose.yml) runs several of
# these behind nginx. Pinned dependencies from requirements.lock, static files collected
# at build time, a non-root user, and a health check on /healthz.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 parley \
    && useradd --system --uid 10001 --gid parley --home-dir /app --shell /usr/sbin/nologin parley

WORKDIR /app

# The lock pins everything; the test and lint tools are left out of the image.
COPY requirements.lock .
RUN grep -vE '^(pytest|pytest-[a-z-]+|hypothesis|ruff)==' requirements.lock > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .

# Static files are part of the image (hashed names, WhiteNoise's manifest); the compose
# release job copies them to the volume nginx serves. The key here only lets settings load.
ENV STATIC_ROOT=/app/static \
    MEDIA_ROOT=/srv/parley/media \
    LOG_FORMAT=json \
    PORT=8000
RUN SECRET_KEY=collectstatic-only-not-a-secret python manage.py collectstatic --noinput -v0 \
    && rm -rf /app/var/* \
    && mkdir -p /srv/parley/media /srv/parley/static /app/var \
    && chown -R parley:parley /srv/parley /app/var

USER parley
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 \
    CMD ["python", "deploy/healthcheck.py"]

# SIGTERM: uvicorn stops accepting, closes every WebSocket with 1012 (service restart:
# clients reconnect to another worker at once) and exits within the graceful timeout.
STOPSIGNAL SIGTERM
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--ws", "core.uvicorn_ws:ParleyWebSocketProtocol",
     "--ws-max-size", "65536", "--ws-per-message-deflate", "false", \
     "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1", \
     "--no-server-header", "--timeout-graceful-shutdown", "10"]
