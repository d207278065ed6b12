"""The workspace as a resource: the data root every file of a run lives under, read once where
the Definitions are built and handed to every resource that writes or reads files."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import ClassVar

import dagster as dg
from pydantic import Field

from silva_app.home import Home
from silva_app.setup import Setup


class Workspace(dg.ConfigurableResource):
    """The person's workspace: its data root (`root`) and, in it, how it was set up
    (`setup.yaml`, read at run time so a retrain under a long-running daemon reads what the
    latest `silva-run` recorded). The other resources hold this one."""

    root: str = Field(description="the data root (SILVA_HOME when the Definitions were built)")

    def home(self) -> Home:
        return Home(Path(self.root))

    def setup(self) -> Setup:
        """The workspace's settings: its setup.yaml, then the SILVA_* variables of this process."""
        return Setup.load(self.home())

    def problems(self) -> list[str]:
        """The data root must be a folder silva can write in."""
        try:
            root = self.home().root
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=root, prefix=".write-check-"):
                pass
        except OSError as e:
            return [f"SILVA_HOME: the data root {self.root} is not writable ({e.strerror or e})"]
        return []

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        fail_on(self.problems())


def fail_on(problems: list[str]) -> None:
    """Stop a run before its first step, with every problem named, one per line."""
    if problems:
        raise dg.Failure(description="\n".join(problems))


class InWorkspace(dg.ConfigurableResource):
    """A resource whose settings default to the workspace's setup: a field left empty takes the
    setting of the same meaning (`SETTING` maps field -> setup key)."""

    workspace: Workspace
    SETTING: ClassVar[dict[str, str]] = {}

    def setting(self, name: str, setup: Setup | None = None) -> tuple[object, str]:
        """(value, where it came from) of field `name`: its own when set, else the setup's."""
        own = getattr(self, name)
        if own or name not in self.SETTING:
            return own, f"the {type(self).__name__} resource's `{name}`"
        setup = setup or self.workspace.setup()
        key = self.SETTING[name]
        return setup[key], setup.where(key)
