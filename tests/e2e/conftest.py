"""Fixtures of the end-to-end tests: one user's machine, and the person's own servers on the README's
default ports."""

from __future__ import annotations

import pytest
from world import World


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_backbone, persons_own_servers) -> World:
    return World(tmp_path_factory.mktemp("readme"), tiny_backbone)


@pytest.fixture(scope="module")
def persons_own_servers():
    """The person's own UIs on the README's default ports (3000, 8765), where those are free: a
    test that talks to a default port instead of the one it picked reaches one of these."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class NotSilva(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(418)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    servers = []
    for port in (3000, 8765):
        try:
            servers.append(ThreadingHTTPServer(("127.0.0.1", port), NotSilva))
        except OSError:  # taken already: by the person's own UI, which serves the same purpose
            continue
        Thread(target=servers[-1].serve_forever, daemon=True).start()
    yield
    for server in servers:
        server.shutdown()
        server.server_close()
