"""What every local page silva serves shares (the rating page, the gallery): the Host and Origin
checks and the write token that keep other websites out, and reading a JSON body."""

from __future__ import annotations

import json
import secrets
import socket
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from silva_model.ratings import rating_problem

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
TOKEN_HEADER = "x-silva-token"


class OwnPageOnly:
    """Every request, to every route: the Host must be one this server answers to (so a DNS
    rebinding page cannot read the queue or the images); a write must also come from the page's
    own origin, as `application/json`, carrying the token embedded in the page (so no other
    website can write through a form or a no-cors fetch). Plain ASGI: a page of 60 thumbnails
    is 60 requests, and it adds almost nothing to each."""

    def __init__(self, app: ASGIApp, hosts: tuple[str, ...], token: str) -> None:
        self.app, self.hosts, self.token = app, hosts, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self.refusal(scope) if scope["type"] == "http" else None
        if refused is None:
            await self.app(scope, receive, send)
        else:
            await JSONResponse({"error": refused}, status_code=403)(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        """Why this request is refused; None when it may go on."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in self.hosts:
            return f"this server does not answer to Host {host!r}"
        if scope["method"] in ("GET", "HEAD"):
            return None
        origin = headers.get("origin")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if origin != f"http://{host}":
            return f"writes come from this page only, not {origin!r}"
        if kind != "application/json" or not secrets.compare_digest(
            headers.get(TOKEN_HEADER, ""), self.token
        ):
            return "writes need application/json and this page's token"
        return None


def serve_local(app: ASGIApp, host: str, port: int) -> None:
    """Serve `app` on host:port until Ctrl-C (exit status 130, no traceback). The port is taken
    before the address is printed, so a busy one is an error that says so, not an address that
    leads nowhere."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({e.strerror}): choose another with --port") from None
    try:
        print(f"open http://{host}:{port}/  (Ctrl+C stops)", flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises again the Ctrl-C it shut down on
        raise SystemExit(130) from None


NO_RATING = 'expected a JSON object with a rating, such as {"rating": 4}'


async def posted_rating(request: Request) -> tuple[Any, str | None]:
    """The rating a write posts, and why it is none (None: a rating 1..5). A body that is not a
    JSON object with a rating says so, rather than "rating is empty"."""
    body = await json_body(request)
    if "rating" not in body:
        return None, NO_RATING
    return body["rating"], rating_problem(body["rating"], exact=True)


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object; {} for anything else (empty, not JSON, not an object)."""
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}
