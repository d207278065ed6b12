"""`silva gallery`: the library through the person's taste, a local page of thumbnails best
first, with filters, why each image scores as it does, and rating (`server.py`; the page itself
is `page.html`)."""

from silva_app.gallery.server import build_app, serve

__all__ = ["build_app", "serve"]
