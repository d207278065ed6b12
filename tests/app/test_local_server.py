"""What every local page shares: a port a browser can open, taken before its address is printed."""

from __future__ import annotations

import socket

import pytest

from silva_app.local_server import serve_local
from silva_model.cli import main


@pytest.mark.parametrize(("command", "port"), [("rate", "99999"), ("gallery", "0"), ("rate", "abc")])
def test_a_port_no_browser_can_open_is_refused_by_the_option(command, port, capsys):
    """Breaker, round 4: --port 99999 printed http://127.0.0.1:99999/ and listened elsewhere."""
    with pytest.raises(SystemExit) as e:
        main([command, "--port", port])
    assert e.value.code == 2 and "argument --port" in capsys.readouterr().err


def test_a_busy_port_is_an_error_before_any_address_is_printed(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port} .*choose another with --port"):
            serve_local(lambda scope, receive, send: None, "127.0.0.1", port)
    assert "open http" not in capsys.readouterr().out


SERVE = """
import sys
from silva_app.local_server import serve_local

async def app(scope, receive, send):
    pass

serve_local(app, "127.0.0.1", int(sys.argv[1]))
"""


def test_ctrl_c_stops_a_page_without_a_traceback():
    """Walker's finding: every Ctrl-C of `silva rate` and `silva gallery` ended in uvicorn's and
    asyncio's traceback (uvicorn raises the Ctrl-C it shut down on again)."""
    import signal
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    page = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert page.stdout.readline().startswith(f"open http://127.0.0.1:{port}/")
        page.send_signal(signal.SIGINT)
        out, err = page.communicate(timeout=30)
    finally:
        page.kill()
    assert page.returncode == 130 and "Traceback" not in err, err


@pytest.mark.parametrize("value", ["nan", "6", "0.5", "four"])
def test_export_refuses_a_minimum_rating_off_the_scale(value, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["export", "--to", str(tmp_path / "best"), "--min-rating", value])
    assert e.value.code == 2 and "argument --min-rating" in capsys.readouterr().err
