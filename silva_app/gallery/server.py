"""The gallery's server: the latest library scores as pages of thumbnails, best first, with
filters, one image large with why it scores as it does, and ratings into silva's ratings log.

Every query runs over the scores' arrays in this process (`LibraryScores.select`), and the page
asks for one page at a time, so 100,000 images open as fast as 100. Thumbnails come from the
workspace's content-addressed cache, made in a background thread for the page shown and the next.
Only library images (by row) and the rated images their explanations name (by hash) are ever
served: the page cannot read any other file. Served on 127.0.0.1 unless another host is asked for,
with the rating page's protections (`silva_app.local_server`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from silva_app.home import Home
from silva_app.library_scores import LibraryScores, Query
from silva_app.local_server import LOCAL_HOSTS, OwnPageOnly, json_body
from silva_app.previews import jpeg, preview
from silva_app.ratings_log import RatingsLog
from silva_app.thumbnails import Thumbnails, problem_of
from silva_model.parquet import read_parquet

PAGE = Path(__file__).with_name("page.html")  # the HTML, CSS and script, served as is
PAGE_SIZE = 60
MAX_PAGE = 200


def query_of(params: dict[str, str]) -> tuple[Query, int, int]:
    """A page request's query, offset and size; a bad value is a ValueError naming it."""

    def number(name: str, kind: type) -> Any:
        value = params.get(name) or None
        try:
            return None if value is None else kind(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not a number") from None

    query = Query(
        sort=params.get("sort") or "score",
        filter=params.get("filter") or "all",
        folder=params.get("folder") or "",
        min_rating=number("min", float),
        max_rating=number("max", float),
        ascending=params.get("asc") == "1",
    )
    offset, limit = number("offset", int) or 0, number("limit", int) or PAGE_SIZE
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"offset must be 0 or more and limit 1..{MAX_PAGE}, got {offset} and {limit}")
    return query, offset, limit


def folders(scores: LibraryScores, limit: int = 500) -> list[str]:
    """The folders that hold the most images (what the folder filter suggests), most first."""
    parents = pc.replace_substring_regex(scores.path.drop_null(), r"[^/\\]*$", "")
    counts = pc.value_counts(parents)
    order = np.argsort(-counts.field("counts").to_numpy(), kind="stable")[:limit]
    return counts.field("values").take(order).to_pylist()


def rated_paths(scores: LibraryScores, manifest: Path) -> dict[str, str | None]:
    """image_sha256 -> file of every rated image the gallery may show beside another: those of
    the manifest the scores were explained against (where it is), and the library's rated ones."""
    rated = np.flatnonzero(scores.given > 0)
    out = dict(zip(scores.sha256.take(rated).to_pylist(), scores.path.take(rated).to_pylist(), strict=True))
    if manifest.is_file():
        table = read_parquet(manifest, ["image_sha256", "path"])
        out.update(zip(table["image_sha256"].to_pylist(), table["path"].to_pylist(), strict=True))
    return out


def build_app(
    scores: LibraryScores,
    log: RatingsLog,
    thumbnails: Thumbnails,
    rated_paths: Callable[[], dict[str, str | None]],
    host: str = "127.0.0.1",
    size: int = 1600,
) -> Starlette:
    """The gallery over `scores`; `rated_paths` gives the files of the rated images that
    explanations name (image_sha256 -> path), asked once, when first needed."""
    token = secrets.token_urlsafe(32)
    html = PAGE.read_text(encoding="utf-8").replace("__TOKEN__", json.dumps(token))
    seen = {"log": None}
    known: dict[str, list[str]] = {"folders": []}
    rated: dict[str, str | None] = {}

    def fresh() -> None:
        """Lay the log's ratings on again when it changed (a rating from another page too)."""
        mark = log.fingerprint()
        if mark != seen["log"]:
            scores.overlay(log.entries())
            seen["log"] = mark

    def row_of(request: Request) -> int | None:
        try:
            i = int(request.path_params["i"])
        except ValueError:
            return None
        return i if 0 <= i < len(scores) else None

    def item(i: int) -> dict[str, Any]:
        return {
            "i": i,
            "name": scores.name(i),
            "expected": round(float(scores.expected[i]), 3),
            "score": round(float(scores.score[i]), 4),
            "uncertainty": round(float(scores.uncertainty[i]), 3),
            "ood": bool(scores.out_of_domain[i]),
            "rating": int(scores.rating[i]) or None,
        }

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    async def items(request: Request) -> JSONResponse:
        try:
            query, offset, limit = query_of(dict(request.query_params))
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        fresh()
        rows = scores.select(query)
        shown = rows[offset : offset + limit].tolist()
        ahead = rows[offset + limit : offset + 2 * limit].tolist()
        thumbnails.prefetch((scores.sha256[i].as_py(), scores.path[i].as_py()) for i in shown + ahead)
        return JSONResponse({"total": len(rows), "offset": offset, "items": [item(i) for i in shown]})

    async def about(request: Request) -> JSONResponse:
        if not known["folders"]:  # a pass over every path: off the event loop, once
            known["folders"] = await run_in_threadpool(folders, scores)
        return JSONResponse(
            {"images": len(scores), "scored_by": scores.scored_by(), "folders": known["folders"]}
        )

    async def thumbnail(request: Request) -> Response:
        i = row_of(request)
        if i is None:
            return JSONResponse({"error": "no such library image"}, status_code=404)
        return await _thumb(scores.sha256[i].as_py(), scores.path[i].as_py())

    async def _thumb(sha: str, path: str | None) -> Response:
        data, problem = thumbnails.cached(sha), None
        if data is None:  # to be made: off the event loop
            data, problem = await run_in_threadpool(thumbnails.get, sha, path)
        headers = {"x-silva-problem": problem} if problem else {"cache-control": "max-age=86400"}
        return Response(data, media_type="image/jpeg", headers=headers)

    async def rated_thumbnail(request: Request) -> Response:
        sha = request.path_params["sha"]
        if not rated:
            rated.update(await run_in_threadpool(rated_paths))
        if sha not in rated:
            return JSONResponse({"error": "not a rated image this gallery knows"}, status_code=404)
        return await _thumb(sha, rated[sha])

    async def image(request: Request) -> Response:
        i = row_of(request)
        if i is None:
            return JSONResponse({"error": "no such library image"}, status_code=404)
        path, sha = scores.path[i].as_py(), scores.sha256[i].as_py()
        try:
            return Response(jpeg(await run_in_threadpool(preview, path, sha, size)), media_type="image/jpeg")
        except (OSError, SyntaxError, ValueError) as e:  # Pillow raises all three for broken files
            code = 404 if isinstance(e, FileNotFoundError) else 422
            return JSONResponse({"error": problem_of(path, e)}, status_code=code)

    async def why(request: Request) -> JSONResponse:
        i = row_of(request)
        if i is None:
            return JSONResponse({"error": "no such library image"}, status_code=404)
        fresh()
        w = await run_in_threadpool(scores.why, i)
        near = [
            {"sha": s, "similarity": round(sim, 3), "rating": r}
            for s, sim, r in zip(
                w["neighbours"], w["neighbour_similarity"], w["neighbour_ratings"], strict=True
            )
        ]
        return JSONResponse(
            item(i)
            | {"path": scores.path[i].as_py(), "neighbours": near}
            | {"judge_share": w["judge_share"], "judge_shift": w["judge_shift"]}
        )

    async def rate(request: Request) -> JSONResponse:
        i = row_of(request)
        rating = (await json_body(request)).get("rating")
        if i is None or type(rating) is not int or not 1 <= rating <= 5:  # bool is no rating
            return JSONResponse({"error": "expected a library image and a rating 1..5"}, status_code=400)
        path = scores.path[i].as_py()
        if path and not Path(path).is_file():  # no path: a vector-only image, shown as a swatch
            return JSONResponse({"error": f"image is gone: {path}"}, status_code=404)
        fresh()
        sha, post_id = scores.sha256[i].as_py(), scores.post_id[i].as_py()
        rid = log.append(sha, rating, path, post_id, rerate=bool(scores.rating[i]))
        fresh()
        return JSONResponse({"id": rid, "rating": int(scores.rating[i])})

    async def undo(request: Request) -> JSONResponse:
        body = await json_body(request)
        rid, i = body.get("id"), body.get("i")
        if type(rid) is not int or type(i) is not int or not 0 <= i < len(scores):
            return JSONResponse({"error": "expected the id of a rating and its image"}, status_code=400)
        try:
            log.undo(rid)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        fresh()
        return JSONResponse({"undone": rid, "rating": int(scores.rating[i]) or None})

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/items", items),
            Route("/api/about", about),
            Route("/api/thumb/{i}", thumbnail),
            Route("/api/rated/{sha}/thumb", rated_thumbnail),
            Route("/api/image/{i}", image),
            Route("/api/why/{i}", why),
            Route("/api/rate/{i}", rate, methods=["POST"]),
            Route("/api/undo", undo, methods=["POST"]),
        ],
        middleware=[Middleware(OwnPageOnly, hosts=tuple({*LOCAL_HOSTS, host}), token=token)],
    )


def serve(scores: LibraryScores, log: RatingsLog, home: Home, host: str, port: int) -> None:
    import uvicorn

    thumbnails = Thumbnails(home.thumbnails)
    app = build_app(scores, log, thumbnails, lambda: rated_paths(scores, home.latest("manifest")), host)
    print(f"silva gallery: {len(scores):,} images from {scores.scored_by(home)}; ratings go to {log.path}")
    print(f"open http://{host}:{port}/  (Ctrl+C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
