"""A loopback HTTP endpoint that answers the Hub API calls an upload makes and records them,
so the real huggingface_hub client is exercised up to the network edge."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingHub:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                hub.requests.append(
                    {
                        "method": "GET",
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
                self._reply(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                hub.requests.append({"method": "POST", "path": self.path, "headers": headers, "body": body})
                if self.path == "/api/repos/create":
                    req = json.loads(body)
                    repo = (
                        f"{req.get('organization')}/{req['name']}" if req.get("organization") else req["name"]
                    )
                    return self._reply(200, {"url": f"{hub.url}/{repo}", "name": repo})
                if self.path == "/api/validate-yaml":  # the model card's front matter
                    return self._reply(200, {"errors": [], "warnings": []})
                if "/preupload/" in self.path:
                    files = json.loads(body)["files"]
                    return self._reply(
                        200,
                        {
                            "files": [
                                {
                                    "path": f["path"],
                                    "uploadMode": "regular",
                                    "shouldIgnore": False,
                                    "oid": None,
                                }
                                for f in files
                            ]
                        },
                    )
                if "/commit/" in self.path:
                    repo = self.path.removeprefix("/api/models/").split("/commit/")[0]
                    return self._reply(
                        200,
                        {
                            "commitUrl": f"{hub.url}/{repo}/commit/{'a' * 40}",
                            "commitOid": "a" * 40,
                            "pullRequestUrl": None,
                        },
                    )
                return self._reply(404, {"error": f"unexpected {self.path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def committed_files(self) -> dict[str, bytes]:
        """path -> content of the files in the (ndjson) commit payload."""
        out = {}
        for r in self.requests:
            if "/commit/" in r["path"]:
                for line in r["body"].splitlines():
                    item = json.loads(line)
                    if item.get("key") == "file":
                        out[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        return out

    def close(self) -> None:
        self.server.shutdown()
