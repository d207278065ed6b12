"""Everything a run needs, checked before its first step writes anything: the data root, the
ratings, the library, the backbone and the judge. Each problem names the variable (or the setup
file's entry, or the option) that set it, and the path."""

from __future__ import annotations

from pathlib import Path

from silva_app.home import Home
from silva_app.setup import Setup
from silva_model.backbone import check_backbone
from silva_model.release import head_files
from silva_pipeline.definitions import workspace_resources


def preflight(home: Home, setup: Setup) -> list[str]:
    """The problems that would stop a run in the workspace at `home` as `setup` sets it up."""
    res = workspace_resources(home)
    found = res["workspace"].problems()
    found += res["ratings_source"].problems(setup) + res["library_source"].problems(setup)
    found += res["embedder"].problems(setup)
    if not found and setup["ratings.source"] != "demo":  # the demo's vectors need no backbone
        try:
            check_backbone(
                str(setup["backbone"]), fix=f"set {setup.where('backbone')} to a SigLIP folder or id"
            )
        except ValueError as e:
            found.append(f"{setup.where('backbone')}: {e}")
    prior = setup.train_config().prior
    if prior:
        where = "SILVA_PRIOR" if "prior" in setup.training_env else "--prior"
        if "prior" not in setup.training_env and "prior" not in setup.training_args:
            where = f"training.prior in {setup.file}"
        try:
            check_backbone(prior, what="judge", fix="name a silva release folder or a Hub repo id")
            if Path(prior).is_dir():
                head_files(prior)
        except (ValueError, FileNotFoundError) as e:
            found.append(f"{where}: {e}")
    return found
