"""The Hugging Face Hub as a resource: where releases are uploaded, when a repo id and a token are set."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from silva_pipeline.resources.env import env_field


class HubResource(dg.ConfigurableResource):
    """The Hugging Face Hub destination. Uploads happen only when both `repo_id` and `token`
    are set; the token comes from an EnvVar and is never logged or put in metadata."""

    repo_id: str = env_field("SILVA_HUB_REPO", "", "e.g. your-name/silva-head; empty: release locally only")
    token: str | None = Field(default=None, description="HF write token (wire as EnvVar('HF_TOKEN'))")
    private: bool = True
    endpoint: str | None = Field(default=None, description="Hub endpoint; empty: huggingface.co")

    def enabled(self) -> bool:
        return bool(self.repo_id and self.token)

    def upload(self, folder: Path, commit_message: str) -> str:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=self.endpoint, token=self.token)
        api.create_repo(self.repo_id, private=self.private, exist_ok=True)
        info = api.upload_folder(repo_id=self.repo_id, folder_path=str(folder), commit_message=commit_message)
        return str(getattr(info, "commit_url", info))
