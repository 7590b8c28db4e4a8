"""How both references are served: on the service's stack (uvicorn, uvloop, httptools), one
process, no access log, no `server` header, on the port `run.sh` gives them."""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn


def serve(app: Any, description: str) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        log_level="warning",
        lifespan="on",
    )
