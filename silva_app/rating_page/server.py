"""The rating page's server: a local page that shows the rating queue and appends each judgement
to silva's ratings log the moment it is given, in one of three modes:

- rate: one image at a time; 1-5 (keys or the boxes) rate, left/right move, u undo, s skip;
- pair: two images side by side; left/right (or a click) picks, down is a tie, s skip, u undo;
- rank: a group of about six; keys 1-6 or clicks put them in order, best first, Enter submits,
  Backspace takes the last back, s skips, u undoes the last group.

Pairs and groups come from the queue (`silva_app.comparisons`). Blind by default: the model's
view (expected rating, why an image was picked, the earlier rating of a re-rate) stays hidden
so it cannot anchor the person. Everything is served from this process (no CDN), on 127.0.0.1 unless another
host is asked for. Only queue items are ever served, by position: the page cannot read any other
file. A vanished or undecodable image is shown as such and skipped; the page does not crash.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from silva_app.comparisons import propose_groups, propose_pairs
from silva_app.local_server import LOCAL_HOSTS, OwnPageOnly
from silva_app.local_server import json_body as _json_body
from silva_app.previews import jpeg, preview
from silva_app.queue import read_queue
from silva_app.ratings_log import RatingsLog

MODES = ("rate", "pair", "rank")


def _public(item: dict[str, Any], i: int, blind: bool) -> dict[str, Any]:
    out = {"i": i, "kind": item["kind"], "name": Path(item["path"]).name if item["path"] else None}
    if not blind:
        out |= {k: item[k] for k in ("reason", "expected_rating", "given_rating")}
    return out


PAGE = Path(__file__).with_name("page.html")  # the HTML, CSS and script, served as is


def build_app(
    queue: list[dict[str, Any]],
    log: RatingsLog,
    blind: bool = True,
    size: int = 1600,
    host: str = "127.0.0.1",
    mode: str = "rate",
) -> Starlette:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {list(MODES)}")
    token = secrets.token_urlsafe(32)
    html = (
        PAGE.read_text(encoding="utf-8")
        .replace("__BLIND__", json.dumps(blind))
        .replace("__TOKEN__", json.dumps(token))
        .replace("__MODE__", json.dumps(mode))
    )
    proposals = {"rate": [], "pair": propose_pairs(queue), "rank": propose_groups(queue)}[mode]
    queued = pa.array(sorted({q["image_sha256"] for q in queue}), pa.string())

    def item_at(request: Request) -> tuple[int, dict[str, Any]] | None:
        try:
            i = int(request.path_params["i"])
        except ValueError:
            return None
        return (i, queue[i]) if 0 <= i < len(queue) else None

    def standing() -> dict[str, dict[str, int]]:
        """The latest standing log rating of each queued image (so a reload resumes)."""
        rows = log.entries()
        rows = rows.filter(pc.is_in(rows["image_sha256"], value_set=queued))
        return {r["image_sha256"]: {"id": r["id"], "rating": r["rating"]} for r in rows.to_pylist()}

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    def compared() -> dict[frozenset[str], int]:
        """The images of each standing comparison -> its id (so a reload resumes)."""
        out: dict[int, set[str]] = {}
        for r in log.pairs().select(["id", "a", "b"]).to_pylist():
            out.setdefault(r["id"], set()).update((r["a"], r["b"]))
        return {frozenset(v): k for k, v in out.items()}

    async def items(request: Request) -> JSONResponse:
        done = standing()
        judged = compared() if proposals else {}
        return JSONResponse(
            {
                "blind": blind,
                "mode": mode,
                "items": [
                    _public(q, i, blind) | {"rated": done.get(q["image_sha256"])} for i, q in enumerate(queue)
                ],
                "proposals": [
                    {
                        "members": list(p.members),
                        "why": None if blind else p.why,
                        "done": judged.get(frozenset(queue[i]["image_sha256"] for i in p.members)),
                    }
                    for p in proposals
                ],
            }
        )

    async def image(request: Request) -> Response:
        found = item_at(request)
        if found is None:
            return JSONResponse({"error": "no such queue item"}, status_code=404)
        _, q = found
        try:
            return Response(jpeg(preview(q["path"], q["image_sha256"], size)), media_type="image/jpeg")
        except FileNotFoundError:
            return JSONResponse({"error": f"image is gone: {q['path']}"}, status_code=404)
        except (OSError, SyntaxError, ValueError) as e:  # Pillow raises all three for broken files
            return JSONResponse({"error": f"cannot decode {q['path']}: {e}"}, status_code=422)

    async def rate(request: Request) -> JSONResponse:
        found = item_at(request)
        rating = (await _json_body(request)).get("rating")
        if found is None or type(rating) is not int or not 1 <= rating <= 5:  # bool is no rating
            return JSONResponse({"error": "expected a queue item and a rating 1..5"}, status_code=400)
        _, q = found
        if q["path"] and not Path(q["path"]).is_file():  # no path: a vector-only item, shown as a swatch
            return JSONResponse({"error": f"image is gone: {q['path']}"}, status_code=404)
        rerate = q["kind"] == "rerate" or q["image_sha256"] in standing()
        rid = log.append(q["image_sha256"], rating, q["path"], q["post_id"], rerate=rerate)
        return JSONResponse({"id": rid})

    async def compare(request: Request) -> JSONResponse:
        body = await _json_body(request)
        members, winner = body.get("members"), body.get("winner")
        if (
            not isinstance(members, list)
            or len(members) < 2
            or not all(type(i) is int and 0 <= i < len(queue) for i in members)
            or len(set(members)) != len(members)
            or (winner is not None and (len(members) != 2 or winner not in ("a", "b", "tie")))
            or (winner is None and mode == "pair")
        ):
            return JSONResponse(
                {"error": "expected two or more queue items (best first) or a pair and a winner a, b or tie"},
                status_code=400,
            )
        for i in members:
            if queue[i]["path"] and not Path(queue[i]["path"]).is_file():
                return JSONResponse({"error": f"image is gone: {queue[i]['path']}"}, status_code=404)
        try:
            cid = log.compare([queue[i] for i in members], winner)
        except ValueError as e:  # two queue rows of one image
            return JSONResponse({"error": str(e)}, status_code=400)
        return JSONResponse({"id": cid})

    async def undo(request: Request) -> JSONResponse:
        body = await _json_body(request)
        rid, kind = body.get("id"), body.get("kind", "rating")
        if type(rid) is not int or kind not in ("rating", "comparison"):
            return JSONResponse({"error": "expected the id of a rating or a comparison"}, status_code=400)
        try:
            (log.undo if kind == "rating" else log.undo_comparison)(rid)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        return JSONResponse({"undone": rid})

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/items", items),
            Route("/api/image/{i}", image),
            Route("/api/rate/{i}", rate, methods=["POST"]),
            Route("/api/compare", compare, methods=["POST"]),
            Route("/api/undo", undo, methods=["POST"]),
        ],
        middleware=[Middleware(OwnPageOnly, hosts=tuple({*LOCAL_HOSTS, host}), token=token)],
    )


def serve(queue_path: Path, log: RatingsLog, host: str, port: int, blind: bool, mode: str = "rate") -> None:
    import uvicorn

    queue = read_queue(queue_path)
    app = build_app(queue, log, blind, host=host, mode=mode)
    print(f"silva rate ({mode}): {len(queue)} images from {queue_path}; judgements go to {log.path}")
    print(f"open http://{host}:{port}/  (Ctrl+C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
