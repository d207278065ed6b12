"""`silva rate`, added to the `silva` command by silva_app (entry point `silva.commands`), so the
lean CLI knows nothing of the rating page and its dependencies."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from silva_model.ratings import HIGHEST, LOWEST


def port_number(text: str) -> int:
    """--port: a TCP port a browser can open (1..65535)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1..65535)")
    return value


def rating_bound(text: str) -> float:
    """--min-rating: an expected rating on the person's scale (NaN matched nothing, silently)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not LOWEST <= value <= HIGHEST:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text} is not a rating from {LOWEST} to {HIGHEST}")
    return value


def add_rate_command(sub, fmt: type[argparse.HelpFormatter]) -> None:
    r = sub.add_parser(
        "rate",
        help="rate or compare the rating queue in a local browser page (keys 1-5, arrows, u, s)",
        formatter_class=fmt,
    )
    r.add_argument("--queue", help="a rating_queue parquet (default: the newest the pipeline wrote)")
    r.add_argument("--log", help="the ratings log (default: ratings-log.sqlite in silva's data folder)")
    r.add_argument("--port", type=port_number, default=8765, help="the page's port on --host")
    r.add_argument("--host", default="127.0.0.1", help="serve another interface only when you mean to")
    r.add_argument(
        "--mode",
        choices=("rate", "pair", "rank"),
        default="rate",
        help="rate one image 1-5, pick the better of two, or order a group of six",
    )
    r.add_argument("--show-scores", action="store_true", help="show the model's view (blind by default)")
    r.add_argument("--demo", action="store_true", help="the demo's workspace: its queue and its ratings log")
    r.set_defaults(func=_cmd_rate)


def _cmd_rate(a: argparse.Namespace) -> int:
    try:
        from silva_app import rating_page
        from silva_app.home import use_demo_workspace
        from silva_app.queue import latest_queue
        from silva_app.ratings_log import RatingsLog
    except ImportError as e:
        raise OSError(f"silva rate needs the 'pipeline' extra (starlette, uvicorn, dagster): {e}") from e
    if a.demo:
        use_demo_workspace()

    log = RatingsLog(Path(a.log)) if a.log else RatingsLog.default()
    queue = Path(a.queue) if a.queue else latest_queue()
    rating_page.serve(queue, log, a.host, a.port, not a.show_scores, a.mode)
    return 0


def _scores(a: argparse.Namespace):
    """The library scores a command reads (--scores, else the newest the pipeline published),
    with the ratings log's newer ratings on top."""
    from silva_app.home import use_demo_workspace
    from silva_app.library_scores import LibraryScores, latest_scores
    from silva_app.ratings_log import RatingsLog

    if a.demo:
        use_demo_workspace()
    scores = LibraryScores.read(Path(a.scores) if a.scores else latest_scores())
    log = RatingsLog(Path(a.log)) if a.log else RatingsLog.default()
    scores.overlay(log.entries())
    return scores, log


def _add_scores_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", help="a library_scores parquet (default: the newest the pipeline wrote)")
    p.add_argument("--log", help="the ratings log (default: ratings-log.sqlite in silva's data folder)")
    p.add_argument("--demo", action="store_true", help="the demo's workspace: its scores and its ratings log")


def add_export_command(sub, fmt: type[argparse.HelpFormatter]) -> None:
    e = sub.add_parser(
        "export",
        help="hard-link (or copy) the library's best images into a folder, with a CSV of their scores",
        formatter_class=fmt,
    )
    e.add_argument("--to", required=True, help="the folder (made if missing; nothing in it is ever replaced)")
    e.add_argument("--top", type=int, help="the N best images by score")
    e.add_argument(
        "--min-rating", type=rating_bound, help="only images whose expected rating is at least this"
    )
    e.add_argument("--folder", help="only images whose path starts with this")
    e.add_argument("--copy", action="store_true", help="copy the files instead of hard-linking them")
    _add_scores_args(e)
    e.set_defaults(func=_cmd_export)


def _cmd_export(a: argparse.Namespace) -> int:
    import sys

    from silva_app.export import choose, export

    scores, _ = _scores(a)
    rows = choose(scores, a.top, a.min_rating, a.folder or "")
    if not len(rows):
        print(
            f"silva: no image of {len(scores)} matches: lower --min-rating or change --folder",
            file=sys.stderr,
        )
        return 2
    out = export(scores, rows, Path(a.to), copy=a.copy)
    for why in out.skipped:
        print(f"silva: skipped {why}", file=sys.stderr)
    if not out.files:
        print(
            f"silva: nothing exported to {out.folder}: none of the {len(rows)} chosen could be",
            file=sys.stderr,
        )
        return 2
    how = f"{len(out.files) - out.copies} hard links, {out.copies} copies"
    print(f"exported {len(out.files)} images to {out.folder} ({how}), best first; the list: {out.csv}")
    print(f"scores: {scores.scored_by()}")
    return 1 if out.skipped else 0


def add_gallery_command(sub, fmt: type[argparse.HelpFormatter]) -> None:
    g = sub.add_parser(
        "gallery",
        help="your library through your taste: thumbnails best first, filters, why each score, rating",
        formatter_class=fmt,
    )
    _add_scores_args(g)
    g.add_argument("--port", type=port_number, default=8766, help="the page's port on --host")
    g.add_argument("--host", default="127.0.0.1", help="serve another interface only when you mean to")
    g.set_defaults(func=_cmd_gallery)


@contextmanager
def _needs_pipeline_extra(command: str) -> Iterator[None]:
    """Imports of a page command: missing ones say which extra brings them."""
    try:
        yield
    except ImportError as e:
        raise OSError(f"silva {command} needs the 'pipeline' extra (starlette, uvicorn): {e}") from e


def _cmd_gallery(a: argparse.Namespace) -> int:
    with _needs_pipeline_extra("gallery"):
        from silva_app import gallery
    from silva_app.home import silva_home

    scores, log = _scores(a)
    gallery.serve(scores, log, silva_home(), a.host, a.port)
    return 0
