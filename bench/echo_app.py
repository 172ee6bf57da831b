"""The HTTP stack's ceiling: a FastAPI app whose one endpoint returns the posted body unchanged.

Served exactly as the service serves itself (uvicorn, uvloop, httptools, one worker, no access
log, no server header), so the gap between the two is what the service's own work costs.
Run: `python -m bench.echo_app --port 8100`.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, Request
from starlette.responses import Response


def create_app() -> FastAPI:
    app = FastAPI(title="echo")

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="image/png")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8100, help="default: %(default)s")
    parser.add_argument("--log-level", default="warning", help="default: %(default)s")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
