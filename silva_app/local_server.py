"""What every local page silva serves shares (the rating page, the gallery): the Host and Origin
checks and the write token that keep other websites out, and reading a JSON body."""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
TOKEN_HEADER = "x-silva-token"


class OwnPageOnly(BaseHTTPMiddleware):
    """Every request, to every route: the Host must be one this server answers to (so a DNS
    rebinding page cannot read the queue or the images); a write must also come from the page's
    own origin, as `application/json`, carrying the token embedded in the page (so no other
    website can write through a form or a no-cors fetch)."""

    def __init__(self, app, hosts: tuple[str, ...], token: str) -> None:
        super().__init__(app)
        self.hosts, self.token = hosts, token

    async def dispatch(self, request: Request, call_next):
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in self.hosts:
            return JSONResponse({"error": f"this server does not answer to Host {host!r}"}, status_code=403)
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if origin != f"http://{host}":
                return JSONResponse({"error": f"writes come from this page only, not {origin!r}"}, 403)
            if kind != "application/json" or not secrets.compare_digest(
                request.headers.get(TOKEN_HEADER, ""), self.token
            ):
                return JSONResponse({"error": "writes need application/json and this page's token"}, 403)
        return await call_next(request)


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object; {} for anything else (empty, not JSON, not an object)."""
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}
