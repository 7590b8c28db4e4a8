"""`payments-api serve | …`: the console script and `python -m payments_api`."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from payments_api import __version__
from payments_api.config.constants import GRACEFUL_SHUTDOWN_SECONDS
from payments_api.config.settings import Settings, format_settings_error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="payments-api", description="The payments API and its companion processes."
    )
    parser.add_argument("--version", action="version", version=f"payments-api {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the API",
        description="Serve the API. Without MONGODB_URI / REDIS_URL / GATEWAY_URL it runs on "
        "in-process stand-ins (one process only).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: PORT, else 3000)")
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1; needs real servers)"
    )

    commands.add_parser(
        "worker",
        help="deliver events and reconcile payments",
        description="Deliver events (Redis stream and webhooks) and reconcile pending payments "
        "until SIGTERM. Needs MONGODB_URI and REDIS_URL; on the in-memory stand-ins `serve` "
        "runs these loops itself.",
    )

    sandbox = commands.add_parser(
        "sandbox-gateway",
        help="serve the sandbox payment gateway",
        description="Serve the sandbox card processor (amounts ending 402 decline, 408 answer "
        "late, 503 fail, 409 arrive late). It keeps its charges in memory.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=4000, help="port (default 4000)")
    return parser


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        print(format_settings_error(exc), file=sys.stderr)
        raise SystemExit(2) from exc


def serve(host: str, port: int | None, workers: int) -> int:
    import uvicorn

    from payments_api.server import BoundedHttpToolsProtocol
    from payments_api.utils.logger import configure_logging, stdlib_log_config

    settings = _load_settings()
    if workers < 1:
        print("--workers must be at least 1", file=sys.stderr)
        return 2
    if workers > 1 and settings.uses_in_memory_store:
        print(
            "--workers above 1 needs MONGODB_URI and REDIS_URL: the in-memory stand-ins "
            "cannot be shared between processes",
            file=sys.stderr,
        )
        return 2
    common: dict[str, Any] = {
        "host": host,
        "port": port or settings.port,
        "server_header": False,
        "date_header": True,
        "access_log": False,  # the app logs each request itself
        # uvicorn's own lines (and any other `logging` record) as the app's JSON lines, in
        # this process and in each `--workers` process.
        "log_config": stdlib_log_config(settings.log_level),
        "proxy_headers": False,
        # httptools with a bound on the request head (uvicorn has none for httptools).
        "http": BoundedHttpToolsProtocol,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "lifespan": "on",
    }
    if workers > 1:
        # This process only supervises the workers and builds no app: its own lines need
        # the logger configured here.
        configure_logging(settings.log_level, settings.app_env)
        uvicorn.run("payments_api.app:create_app_from_env", factory=True, workers=workers, **common)
    else:
        from payments_api.app import create_app

        run_worker = settings.run_worker or settings.uses_in_memory_store
        app = create_app(settings, run_worker=run_worker)
        # Modules, routes and models live as long as the process: keep them out of the cyclic
        # collector's way, so a full collection during traffic walks only request garbage.
        gc.freeze()
        uvicorn.run(app, **common)
    return 0


def worker() -> int:
    import asyncio

    from payments_api.errors import StartupError
    from payments_api.worker import run_worker_process

    settings = _load_settings()
    if settings.uses_in_memory_store:
        print(
            "the worker needs MONGODB_URI and REDIS_URL: on the in-memory stand-ins "
            "`payments-api serve` runs the worker loops itself",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(run_worker_process(settings))
    except StartupError as exc:
        print(f"payments-api worker: {exc}", file=sys.stderr)
        return 1
    return 0


def sandbox_gateway(host: str, port: int) -> int:
    import uvicorn

    from payments_api.sandbox_gateway.app import create_sandbox_app

    settings = _load_settings()
    uvicorn.run(
        create_sandbox_app(settings.gateway_timeout_seconds, settings.reconcile_after_seconds),
        host=host,
        port=port,
        server_header=False,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port, args.workers)
    if args.command == "worker":
        return worker()
    if args.command == "sandbox-gateway":
        return sandbox_gateway(args.host, args.port)
    return 2
