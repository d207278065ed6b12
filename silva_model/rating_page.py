"""`silva rate`: a local page that shows the rating queue one image at a time and appends each
rating to silva's ratings log the moment it is given.

Keys: 1-5 rate, left/right move, u undo, s skip. Blind by default: the model's view (expected
rating, why an image was picked, the earlier rating of a re-rate) stays hidden so it cannot
anchor the person. Everything is served from this process (no CDN), on 127.0.0.1 unless another
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
import pyarrow.parquet as pq
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from silva_model.active import QUEUE_COLUMNS
from silva_model.previews import jpeg, preview
from silva_model.ratings_log import RatingsLog


def read_queue(path: str | Path) -> list[dict[str, Any]]:
    """The queue's rows, checked: a file without the queue's columns is refused, by name."""
    table = pq.read_table(path)
    missing = [c for c in QUEUE_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path} is not a rating queue: it lacks column(s) {missing}")
    return table.select(list(QUEUE_COLUMNS)).to_pylist()


def _public(item: dict[str, Any], i: int, blind: bool) -> dict[str, Any]:
    out = {"i": i, "kind": item["kind"], "name": Path(item["path"]).name if item["path"] else None}
    if not blind:
        out |= {k: item[k] for k in ("reason", "expected_rating", "given_rating")}
    return out


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


async def _json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object; {} for anything else (empty, not JSON, not an object)."""
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def build_app(
    queue: list[dict[str, Any]],
    log: RatingsLog,
    blind: bool = True,
    size: int = 1600,
    host: str = "127.0.0.1",
) -> Starlette:
    token = secrets.token_urlsafe(32)
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
        return HTMLResponse(
            _PAGE.replace("__BLIND__", json.dumps(blind)).replace("__TOKEN__", json.dumps(token))
        )

    async def items(request: Request) -> JSONResponse:
        done = standing()
        return JSONResponse(
            {
                "blind": blind,
                "items": [
                    _public(q, i, blind) | {"rated": done.get(q["image_sha256"])} for i, q in enumerate(queue)
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

    async def undo(request: Request) -> JSONResponse:
        rid = (await _json_body(request)).get("id")
        if type(rid) is not int:
            return JSONResponse({"error": "expected the id of a rating"}, status_code=400)
        try:
            log.undo(rid)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        return JSONResponse({"undone": rid})

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/items", items),
            Route("/api/image/{i}", image),
            Route("/api/rate/{i}", rate, methods=["POST"]),
            Route("/api/undo", undo, methods=["POST"]),
        ],
        middleware=[Middleware(OwnPageOnly, hosts=tuple({*LOCAL_HOSTS, host}), token=token)],
    )


def serve(queue_path: Path, log: RatingsLog, host: str, port: int, blind: bool) -> None:
    import uvicorn

    queue = read_queue(queue_path)
    print(f"silva rate: {len(queue)} images from {queue_path}; ratings go to {log.path}")
    print(f"open http://{host}:{port}/  (Ctrl+C stops)")
    uvicorn.run(build_app(queue, log, blind, host=host), host=host, port=port, log_level="warning")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>silva rate</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  html, body { margin: 0; height: 100%; background: #111; color: #ddd; font: 15px system-ui, sans-serif; }
  #bar { display: flex; gap: 1.5em; align-items: center; padding: .5em 1em; background: #1b1b1b; }
  #bar b { color: #fff; }
  #stage { display: flex; align-items: center; justify-content: center; height: calc(100% - 5.5em); }
  #stage img { max-width: 100%; max-height: 100%; object-fit: contain; }
  #problem { color: #f88; font-size: 1.2em; display: none; }
  #info { padding: .4em 1em; color: #aaa; min-height: 1.2em; }
  .stars span { display: inline-block; width: 1.6em; text-align: center; border: 1px solid #444;
                border-radius: 4px; margin-right: 2px; color: #777; }
  .stars span.on { background: #3a6; color: #fff; border-color: #3a6; }
  #help { margin-left: auto; color: #888; }
</style></head>
<body>
<div id="bar">
  <span>image <b id="pos">-</b> of <b id="total">-</b></span>
  <span>rated <b id="rated">0</b></span>
  <span class="stars" id="stars"><span>1</span><span>2</span><span>3</span><span>4</span><span>5</span></span>
  <span id="kind"></span>
  <span id="help">1-5 rate · ←/→ move · u undo · s skip</span>
</div>
<div id="stage"><img id="img" alt=""><div id="problem"></div></div>
<div id="info"></div>
<script>
const blind = __BLIND__;
const token = __TOKEN__;
const writeHeaders = {"content-type": "application/json", "x-silva-token": token};
let items = [], at = 0, undoStack = [];
const $ = (id) => document.getElementById(id);

async function load() {
  const r = await fetch("/api/items");
  items = (await r.json()).items;
  at = Math.max(0, items.findIndex((it) => !it.rated));
  if (items.every((it) => it.rated)) at = 0;
  show();
}

function show() {
  $("total").textContent = items.length;
  $("rated").textContent = items.filter((it) => it.rated).length;
  if (!items.length) { $("info").textContent = "the queue is empty"; return; }
  const it = items[at];
  $("pos").textContent = at + 1;
  $("kind").textContent = it.kind === "rerate" ? "look again" : "new";
  document.querySelectorAll("#stars span").forEach((s, k) =>
    s.classList.toggle("on", !!it.rated && it.rated.rating === k + 1));
  $("info").textContent = (it.name || "") + (blind ? "" : "  ·  " + it.reason);
  $("problem").style.display = it.problem ? "block" : "none";
  $("problem").textContent = it.problem || "";
  $("img").style.display = it.problem ? "none" : "block";
  if (!it.problem) $("img").src = "/api/image/" + it.i;
}

$("img").addEventListener("error", async () => {
  const it = items[at];
  let why = "this image cannot be shown";
  try { why = (await (await fetch("/api/image/" + it.i)).json()).error || why; } catch (e) {}
  it.problem = why + " (skipped)";
  show();
});

function move(d) { at = Math.min(items.length - 1, Math.max(0, at + d)); show(); }

async function rate(value) {
  const it = items[at];
  if (it.problem) { move(1); return; }
  const r = await fetch("/api/rate/" + it.i, {method: "POST", headers: writeHeaders,
                                               body: JSON.stringify({rating: value})});
  if (!r.ok) { $("info").textContent = "not saved: " + (await r.text()); return; }
  const id = (await r.json()).id;
  undoStack.push({at, id, before: it.rated});
  it.rated = {id, rating: value};
  move(1);
}

async function undo() {
  const last = undoStack.pop();
  if (!last) return;
  const r = await fetch("/api/undo", {method: "POST", headers: writeHeaders,
                                      body: JSON.stringify({id: last.id})});
  if (!r.ok) { $("info").textContent = "undo failed: " + (await r.text()); return; }
  items[last.at].rated = last.before || null;
  at = last.at;
  show();
}

// Keys run one after another: a fast second key waits until the first rating is saved.
let busy = Promise.resolve();
const queueAction = (f) => { busy = busy.then(f).catch((err) => { $("info").textContent = String(err); }); };
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key >= "1" && e.key <= "5") { const v = Number(e.key); queueAction(() => rate(v)); }
  else if (e.key === "ArrowRight" || e.key === "s") queueAction(() => move(1));
  else if (e.key === "ArrowLeft") queueAction(() => move(-1));
  else if (e.key === "u") queueAction(undo);
  else return;
  e.preventDefault();
});
load();
</script>
</body></html>
"""
