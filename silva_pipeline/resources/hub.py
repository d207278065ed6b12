"""The Hugging Face Hub as a resource: where releases are uploaded, when a repo id and a token are set."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from silva_pipeline.resources.workspace import InWorkspace


class HubResource(InWorkspace):
    """The Hugging Face Hub destination. Uploads happen only when both a repo id and `token`
    are set; the token comes from an EnvVar and is never logged or put in metadata."""

    SETTING: ClassVar[dict[str, str]] = {"repo_id": "hub_repo"}
    repo_id: str = Field(default="", description="e.g. you/silva-head; empty: as set up (SILVA_HUB_REPO)")
    token: str | None = Field(default=None, description="HF write token (wire as EnvVar('HF_TOKEN'))")
    private: bool = True
    endpoint: str | None = Field(default=None, description="Hub endpoint; empty: huggingface.co")

    def repo(self) -> str:
        return str(self.setting("repo_id")[0])

    def enabled(self) -> bool:
        return bool(self.repo() and self.token)

    def upload(self, folder: Path, commit_message: str) -> str:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=self.endpoint, token=self.token)
        api.create_repo(self.repo(), private=self.private, exist_ok=True)
        info = api.upload_folder(repo_id=self.repo(), folder_path=str(folder), commit_message=commit_message)
        return str(getattr(info, "commit_url", info))
