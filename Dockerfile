# syntax=docker/dockerfile:1
# payments-api: a builder stage makes wheels, a slim runtime stage installs them and runs as a
# non-root user. Build: docker build -t payments-api .  (or: docker compose build)

# ---- builder: wheels for the project and every dependency --------------------------------
FROM python:3.12-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Dependencies first, from pyproject.toml alone, so this layer is reused until they change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip wheel -w /wheels -r requirements.txt

# Then the project itself (README.md is its package readme).
COPY README.md ./
COPY src ./src
RUN pip wheel --no-deps -w /wheels .

# ---- runtime -------------------------------------------------------------------------------
FROM python:3.12-slim AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin app \
 && mkdir /app && chown 10001:10001 /app

# Install from the builder's wheels only (no index); the wheels never land in a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels payments-api

# An empty working directory: Settings also reads ./.env, and there is none in the image.
WORKDIR /app
USER 10001:10001

EXPOSE 3000

# Liveness only (/health touches no dependency). slim has no curl: python's urllib it is;
# urlopen raises on a refused connection or a non-2xx answer, which exits non-zero.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/health', timeout=4)"]

# SIGTERM (docker stop) drains in-flight requests for up to 30 s: give it a stop timeout
# above that (compose: stop_grace_period).
CMD ["payments-api", "serve", "--host", "0.0.0.0", "--port", "3000"]
