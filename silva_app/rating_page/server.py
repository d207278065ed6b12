"""The rating page's server: a local page that shows the rating queue and appends each judgement
to silva's ratings log the moment it is given, in one of three modes:

- rate: one image at a time; 1-5 (keys or the boxes) rate, left/right move, u undo, s skip;
- pair: two images side by side; left/right (or a click) picks, down is a tie, s skip, u undo;
- rank: a group of about six; keys 1-6 or clicks put them in order, best first, Enter submits,
  Backspace takes the last back, s skips, u undoes the last group.

Pairs and groups come from the queue (`silva_app.comparisons`). Blind by default: the model's
view (expected rating, the reason with its numbers, the earlier rating of a re-rate) stays hidden
so it cannot anchor the person; why each image was picked is said in words without them.
Everything is served from this process (no CDN), on 127.0.0.1 unless another host is asked for.
Only queue items are ever served, by position: the page cannot read any other file. A vanished
or undecodable image is shown with the reason and skipped; the page does not crash.
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
from silva_app.local_server import LOCAL_HOSTS, OwnPageOnly, posted_rating, serve_local
from silva_app.local_server import json_body as _json_body
from silva_app.previews import jpeg, preview
from silva_app.queue import read_queue
from silva_app.ratings_log import RatingsLog, RatingsLogError

MODES = ("rate", "pair", "rank")


# Why an image or a comparison is shown, in words that hold no score and no rating, for a blind
# page whose queue has no `why` of its own (queues written before it had one).
BLIND_WHY = {
    "rerate": "you rated it before; silva asks again because its own view of it differs from yours",
    "new": "silva cannot tell yet what you would give it",
    "pair": "silva cannot tell which of these two you would rate higher",
    "rank": "silva expects these close together: their order is yours to say",
}


def _public(item: dict[str, Any], i: int, blind: bool) -> dict[str, Any]:
    """What the page may know of a queue item: blind, why it was picked without the model's view;
    seeing, the model's view too (the reason with its numbers, the expected and given rating)."""
    out = {
        "i": i,
        "kind": item["kind"],
        "name": Path(item["path"]).name if item["path"] else None,
        "why": item.get("why") or BLIND_WHY.get(item["kind"]),
    }
    if not blind:
        out |= {k: item[k] for k in ("reason", "expected_rating", "given_rating")}
    return out


PAGE = Path(__file__).with_name("page.html")  # the HTML, CSS and script, served as is


def _comparison_problem(
    members: object, winner: object, mode: str, proposed: set[frozenset[int]]
) -> str | None:
    """Why a posted comparison is not one this page asked for, or None: one of its pairs with a
    winner a, b or tie (pair mode), or one of its groups whole, best first (rank mode)."""
    if mode == "rate":
        return "this page rates one image at a time: it proposes nothing to compare"
    if (
        not isinstance(members, list)
        or not all(type(i) is int for i in members)
        or len(set(members)) != len(members)
    ):
        return "expected the queue positions of the images compared, each once"
    if frozenset(members) not in proposed:
        return f"{members} is not a {'pair' if mode == 'pair' else 'whole group'} this page proposed"
    if mode == "pair" and winner not in ("a", "b", "tie"):
        return f"a pair needs a winner a, b or tie, not {winner!r}"
    if mode == "rank" and winner is not None:
        return "a ranking has no winner: its order, best first, says it"
    return None


class _Routes:
    """What the page asks of the server, over one queue and one log, in one mode."""

    def __init__(self, queue: list[dict[str, Any]], log: RatingsLog, blind: bool, size: int, mode: str):
        self.queue, self.log, self.blind, self.size, self.mode = queue, log, blind, size, mode
        self.proposals = {"rate": [], "pair": propose_pairs(queue), "rank": propose_groups(queue)}[mode]
        self.proposed = {frozenset(p.members) for p in self.proposals}
        self.queued = pa.array(sorted({q["image_sha256"] for q in queue}), pa.string())

    def _item(self, request: Request) -> dict[str, Any] | None:
        try:
            i = int(request.path_params["i"])
        except ValueError:
            return None
        return self.queue[i] if 0 <= i < len(self.queue) else None

    def _standing(self) -> dict[str, dict[str, int]]:
        """The latest standing log rating of each queued image (so a reload resumes)."""
        rows = self.log.entries()
        queued = pc.is_in(rows["image_sha256"], value_set=self.queued)
        rows = rows.filter(pc.and_(queued, pc.is_null(rows["problem"])))
        return {r["image_sha256"]: {"id": r["id"], "rating": r["rating"]} for r in rows.to_pylist()}

    def _compared(self) -> dict[frozenset[str], int]:
        """The images of each standing comparison -> its id (so a reload resumes)."""
        out: dict[int, set[str]] = {}
        for r in self.log.pairs().select(["id", "a", "b"]).to_pylist():
            out.setdefault(r["id"], set()).update((r["a"], r["b"]))
        return {frozenset(v): k for k, v in out.items()}

    async def items(self, request: Request) -> JSONResponse:
        done, queue = self._standing(), self.queue
        judged = self._compared() if self.proposals else {}
        return JSONResponse(
            {
                "blind": self.blind,
                "mode": self.mode,
                "items": [
                    _public(q, i, self.blind) | {"rated": done.get(q["image_sha256"])}
                    for i, q in enumerate(queue)
                ],
                "proposals": [
                    {
                        "members": list(p.members),
                        "why": BLIND_WHY[self.mode] if self.blind else p.why,
                        "done": judged.get(frozenset(queue[i]["image_sha256"] for i in p.members)),
                    }
                    for p in self.proposals
                ],
            }
        )

    async def image(self, request: Request) -> Response:
        q = self._item(request)
        if q is None:
            return JSONResponse({"error": "no such queue item"}, status_code=404)
        try:
            return Response(jpeg(preview(q["path"], q["image_sha256"], self.size)), media_type="image/jpeg")
        except FileNotFoundError:
            return JSONResponse({"error": f"image is gone: {q['path']}"}, status_code=404)
        except OSError as e:  # load_rgb raises every decode failure as one (a bomb, a cut file, no image)
            return JSONResponse({"error": f"cannot decode {q['path']}: {e}"}, status_code=422)

    async def rate(self, request: Request) -> JSONResponse:
        q = self._item(request)
        rating, problem = await posted_rating(request)
        problem = "no such queue item" if q is None else problem
        if problem:  # true and 4.0 are no ratings
            return JSONResponse({"error": problem}, status_code=400)
        if _gone(q):
            return JSONResponse({"error": f"image is gone: {q['path']}"}, status_code=404)
        rerate = q["kind"] == "rerate" or q["image_sha256"] in self._standing()
        rid = self.log.append(q["image_sha256"], rating, q["path"], q["post_id"], rerate=rerate)
        return JSONResponse({"id": rid})

    async def compare(self, request: Request) -> JSONResponse:
        body = await _json_body(request)
        members, winner = body.get("members"), body.get("winner")
        problem = _comparison_problem(members, winner, self.mode, self.proposed)
        if problem:
            return JSONResponse({"error": problem}, status_code=400)
        shown = [self.queue[i] for i in members]
        gone = next(filter(_gone, shown), None)
        if gone is not None:
            return JSONResponse({"error": f"image is gone: {gone['path']}"}, status_code=404)
        try:
            cid = self.log.compare(shown, winner)
        except ValueError as e:  # two queue rows of one image
            return JSONResponse({"error": str(e)}, status_code=400)
        return JSONResponse({"id": cid})

    async def undo(self, request: Request) -> JSONResponse:
        body = await _json_body(request)
        rid, kind = body.get("id"), body.get("kind", "rating")
        if type(rid) is not int or kind not in ("rating", "comparison"):
            return JSONResponse({"error": "expected the id of a rating or a comparison"}, status_code=400)
        try:
            (self.log.undo if kind == "rating" else self.log.undo_comparison)(rid)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        return JSONResponse({"undone": rid})


def _gone(q: dict[str, Any]) -> bool:
    """A file that vanished since the queue was made (no path: a vector-only item, a swatch)."""
    return bool(q["path"]) and not Path(q["path"]).is_file()


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
    routes = _Routes(queue, log, blind, size, mode)

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/items", routes.items),
            Route("/api/image/{i}", routes.image),
            Route("/api/rate/{i}", routes.rate, methods=["POST"]),
            Route("/api/compare", routes.compare, methods=["POST"]),
            Route("/api/undo", routes.undo, methods=["POST"]),
        ],
        middleware=[Middleware(OwnPageOnly, hosts=tuple({*LOCAL_HOSTS, host}), token=token)],
        exception_handlers={RatingsLogError: _log_unavailable},
    )


async def _log_unavailable(request: Request, e: Exception) -> JSONResponse:
    """The log went away under a running page (a full disk, a folder made read-only): the page
    says why its judgement was not saved, instead of "Internal Server Error"."""
    return JSONResponse({"error": str(e)}, status_code=503)


def serve(queue_path: Path, log: RatingsLog, host: str, port: int, blind: bool, mode: str = "rate") -> None:
    queue = read_queue(queue_path)
    log.check_writable()
    app = build_app(queue, log, blind, host=host, mode=mode)
    print(f"silva rate ({mode}): {len(queue)} images from {queue_path}; judgements go to {log.path}")
    serve_local(app, host, port)
