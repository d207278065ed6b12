"""`silva rate`: a local page that shows the rating queue one image at a time and appends each
rating to silva's ratings log the moment it is given (`server.py`; the page itself is
`page.html`)."""

from silva_app.rating_page.server import build_app, serve

__all__ = ["build_app", "serve"]
