"""The MLflow registry's side of a release: the registered model, its `champion` alias, and
putting both back as they were (what `ReleaseTransaction` does after a failed or killed release)."""

from __future__ import annotations

REGISTERED_MODEL = "silva-head"


def champion(client) -> str | None:
    """The registry version the `champion` alias points to, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version)
    except MlflowException:
        return None


def versions(client) -> list[int]:
    return [int(v.version) for v in client.search_model_versions(f"name='{REGISTERED_MODEL}'")]


def roll_back(client, previous: str | None, newer_than: int) -> list[str]:
    """Put the registry back as it was: `champion` on `previous` (or unset), and every version
    registered after `newer_than` deleted. Returns the versions deleted."""
    if previous is not None:
        client.set_registered_model_alias(REGISTERED_MODEL, "champion", previous)
    elif champion(client) is not None:
        client.delete_registered_model_alias(REGISTERED_MODEL, "champion")
    orphans = [str(v) for v in versions(client) if v > newer_than]
    for version in orphans:
        client.delete_model_version(REGISTERED_MODEL, version)
    return orphans
