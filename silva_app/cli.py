"""`silva rate`, added to the `silva` command by silva_app (entry point `silva.commands`), so the
lean CLI knows nothing of the rating page and its dependencies."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_rate_command(sub, fmt: type[argparse.HelpFormatter]) -> None:
    r = sub.add_parser(
        "rate",
        help="rate or compare the rating queue in a local browser page (keys 1-5, arrows, u, s)",
        formatter_class=fmt,
    )
    r.add_argument("--queue", help="a rating_queue parquet (default: the newest the pipeline wrote)")
    r.add_argument("--log", help="the ratings log (default: ratings-log.sqlite in silva's data folder)")
    r.add_argument("--port", type=int, default=8765, help="the page's port on --host")
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
