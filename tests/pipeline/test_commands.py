"""silva-demo, silva-run and silva-ui."""

from __future__ import annotations


def test_silva_run_refuses_the_demo_source_and_names_what_to_set(monkeypatch, capsys):
    from silva_pipeline.commands import run_own

    monkeypatch.delenv("SILVA_SOURCE", raising=False)
    assert run_own([]) == 2
    err = capsys.readouterr().err
    assert "SILVA_SOURCE" in err and "silva-demo" in err
