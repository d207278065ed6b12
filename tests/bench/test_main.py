"""`python -m bench`: benchmarks are found by their `main`, listed without importing them, and run
by name with their own arguments."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from helpers import ROOT


def _bench_main():
    spec = importlib.util.spec_from_file_location("bench_main", ROOT / "bench" / "__main__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_module_with_a_main_is_a_benchmark_and_a_helper_is_not(tmp_path):
    main = "\n\ndef main(argv=None):\n    pass\n"
    (tmp_path / "gallery.py").write_text('"""Gallery speed.\n\nMore."""\n' + main)
    (tmp_path / "helper.py").write_text('"""Shared."""\n\n\ndef table():\n    pass\n')
    (tmp_path / "_private.py").write_text(main)
    assert _bench_main().benchmarks(tmp_path) == {"gallery": "Gallery speed."}


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True)


def test_no_name_lists_every_benchmark_and_an_unknown_name_fails_with_the_list():
    listed = _bench()
    assert listed.returncode == 0
    for name in ("quality", "comparisons", "speed", "judges"):
        assert f"  {name} " in listed.stdout
    assert "  common " not in listed.stdout and "  peers " not in listed.stdout
    unknown = _bench("qualty")
    assert unknown.returncode == 2 and "no benchmark named 'qualty'" in unknown.stderr
    assert "  quality " in unknown.stderr


def test_a_benchmark_runs_by_name_with_its_own_arguments():
    out = _bench("judge-blend", "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m bench judge_blend") and "--rho" in out.stdout
