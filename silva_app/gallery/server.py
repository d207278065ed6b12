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
import threading
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
from silva_app.local_server import LOCAL_HOSTS, OwnPageOnly, json_body, posted_rating, serve_local
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


NO_SUCH_IMAGE = {"error": "no such library image"}


class Gallery:
    """The routes of one gallery over `scores`; `rated_paths` gives the files of the rated images
    that explanations name (image_sha256 -> path), asked once, when first needed."""

    def __init__(
        self,
        scores: LibraryScores,
        log: RatingsLog,
        thumbnails: Thumbnails,
        rated_paths: Callable[[], dict[str, str | None]],
        token: str,
        size: int = 1600,
    ) -> None:
        self.scores, self.log, self.thumbnails, self.rated_paths = scores, log, thumbnails, rated_paths
        self.html = PAGE.read_text(encoding="utf-8").replace("__TOKEN__", json.dumps(token))
        self.size = size
        self._log_mark: str | None = None
        self._folders: list[str] = []
        self._rated: dict[str, str | None] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page),
            Route("/api/items", self.items),
            Route("/api/about", self.about),
            Route("/api/thumb/{i}", self.thumbnail),
            Route("/api/rated/{sha}/thumb", self.rated_thumbnail),
            Route("/api/image/{i}", self.image),
            Route("/api/why/{i}", self.why),
            Route("/api/rate/{i}", self.rate, methods=["POST"]),
            Route("/api/undo", self.undo, methods=["POST"]),
        ]

    def fresh(self) -> None:
        """Lay the log's ratings on again when it changed (a rating from another page too)."""
        mark = self.log.fingerprint()
        if mark != self._log_mark:
            self.scores.overlay(self.log.entries())
            self._log_mark = mark

    def row_of(self, request: Request) -> int | None:
        try:
            i = int(request.path_params["i"])
        except ValueError:
            return None
        return i if 0 <= i < len(self.scores) else None

    def item(self, i: int) -> dict[str, Any]:
        s = self.scores
        return {
            "i": i,
            "name": s.name(i),
            "expected": round(float(s.expected[i]), 3),
            "score": round(float(s.score[i]), 4),
            "uncertainty": round(float(s.uncertainty[i]), 3),
            "ood": bool(s.out_of_domain[i]),
            "rating": int(s.rating[i]) or None,
        }

    async def page(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self.html)

    async def items(self, request: Request) -> JSONResponse:
        """One page of the images a query asks for; their thumbnails and the next page's are made
        in the background meanwhile."""
        try:
            query, offset, limit = query_of(dict(request.query_params))
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        self.fresh()
        rows = self.scores.select(query)
        shown = rows[offset : offset + limit].tolist()
        ahead = rows[offset + limit : offset + 2 * limit].tolist()
        s = self.scores
        self.thumbnails.prefetch((s.sha256[i].as_py(), s.path[i].as_py()) for i in shown + ahead)
        return JSONResponse({"total": len(rows), "offset": offset, "items": [self.item(i) for i in shown]})

    async def about(self, request: Request) -> JSONResponse:
        if not self._folders:  # a pass over every path: off the event loop, once
            self._folders = await run_in_threadpool(folders, self.scores)
        s = self.scores
        return JSONResponse({"images": len(s), "scored_by": s.scored_by(), "folders": self._folders})

    async def thumbnail(self, request: Request) -> Response:
        i = self.row_of(request)
        if i is None:
            return JSONResponse(NO_SUCH_IMAGE, status_code=404)
        return await self._thumb(self.scores.sha256[i].as_py(), self.scores.path[i].as_py())

    async def _thumb(self, sha: str, path: str | None) -> Response:
        data, problem = self.thumbnails.cached(sha), None
        if data is None:  # to be made: off the event loop
            data, problem = await run_in_threadpool(self.thumbnails.get, sha, path)
        headers = {"x-silva-problem": problem} if problem else {"cache-control": "max-age=86400"}
        return Response(data, media_type="image/jpeg", headers=headers)

    async def rated_thumbnail(self, request: Request) -> Response:
        sha = request.path_params["sha"]
        if not self._rated:
            self._rated = await run_in_threadpool(self.rated_paths)
        if sha not in self._rated:
            return JSONResponse({"error": "not a rated image this gallery knows"}, status_code=404)
        return await self._thumb(sha, self._rated[sha])

    async def image(self, request: Request) -> Response:
        i = self.row_of(request)
        if i is None:
            return JSONResponse(NO_SUCH_IMAGE, status_code=404)
        path, sha = self.scores.path[i].as_py(), self.scores.sha256[i].as_py()
        try:
            im = await run_in_threadpool(preview, path, sha, self.size)
        except (OSError, SyntaxError, ValueError) as e:  # Pillow raises all three for broken files
            code = 404 if isinstance(e, FileNotFoundError) else 422
            return JSONResponse({"error": problem_of(path, e)}, status_code=code)
        return Response(jpeg(im), media_type="image/jpeg")

    async def why(self, request: Request) -> JSONResponse:
        """One image's facts and why it scores as it does (as `library_scores` stored it)."""
        i = self.row_of(request)
        if i is None:
            return JSONResponse(NO_SUCH_IMAGE, status_code=404)
        self.fresh()
        w = await run_in_threadpool(self.scores.why, i)
        columns = (w["neighbours"], w["neighbour_similarity"], w["neighbour_ratings"])
        near = [{"sha": s, "similarity": round(v, 3), "rating": r} for s, v, r in zip(*columns, strict=True)]
        return JSONResponse(
            self.item(i)
            | {"path": self.scores.path[i].as_py(), "neighbours": near}
            | {"judge_share": w["judge_share"], "judge_shift": w["judge_shift"]}
        )

    async def rate(self, request: Request) -> JSONResponse:
        i = self.row_of(request)
        rating, problem = await posted_rating(request)
        problem = "no such library image" if i is None else problem
        if problem:
            return JSONResponse({"error": problem}, status_code=400)
        s = self.scores
        path = s.path[i].as_py()
        if path and not Path(path).is_file():  # no path: a vector-only image, shown as a swatch
            return JSONResponse({"error": f"image is gone: {path}"}, status_code=404)
        self.fresh()
        rid = self.log.append(
            s.sha256[i].as_py(), rating, path, s.post_id[i].as_py(), rerate=bool(s.rating[i])
        )
        self.fresh()
        return JSONResponse({"id": rid, "rating": int(s.rating[i])})

    async def undo(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        rid, i = body.get("id"), body.get("i")
        if type(rid) is not int or type(i) is not int or not 0 <= i < len(self.scores):
            return JSONResponse({"error": "expected the id of a rating and its image"}, status_code=400)
        try:
            self.log.undo(rid)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        self.fresh()
        return JSONResponse({"undone": rid, "rating": int(self.scores.rating[i]) or None})


def build_app(
    scores: LibraryScores,
    log: RatingsLog,
    thumbnails: Thumbnails,
    rated_paths: Callable[[], dict[str, str | None]],
    host: str = "127.0.0.1",
    size: int = 1600,
) -> Starlette:
    """The gallery over `scores`, behind the Host, Origin and token checks."""
    token = secrets.token_urlsafe(32)
    gallery = Gallery(scores, log, thumbnails, rated_paths, token, size)
    hosts = tuple({*LOCAL_HOSTS, host})
    return Starlette(routes=gallery.routes(), middleware=[Middleware(OwnPageOnly, hosts=hosts, token=token)])


def serve(scores: LibraryScores, log: RatingsLog, home: Home, host: str, port: int) -> None:
    threading.Thread(target=scores.load_why, name="silva-why", daemon=True).start()
    thumbnails = Thumbnails(home.thumbnails)
    app = build_app(scores, log, thumbnails, lambda: rated_paths(scores, home.latest("manifest")), host)
    print(f"silva gallery: {len(scores):,} images from {scores.scored_by(home)}; ratings go to {log.path}")
    serve_local(app, host, port)
