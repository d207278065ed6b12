"""The person's ratings and library, one module per origin behind one small interface
(`base.Origin`): files and folders (`files`), pictoria (`pictoria`, its annotations in
`pictoria_annotations`), the synthetic demo (`demo`);
silva's own ratings log laid on top (`ratings_log`). A new origin is a new module and one line
in the registries below."""

from silva_pipeline.sources.base import (
    BadRow,
    Judgements,
    Judging,
    LibraryLoad,
    Origin,
    RatingsLoad,
    Settings,
    empty_library,
)
from silva_pipeline.sources.demo import Demo
from silva_pipeline.sources.files import Folders, PathList, RatingsFile
from silva_pipeline.sources.pictoria import Pictoria
from silva_pipeline.sources.ratings_log import with_log

RATINGS_ORIGINS: dict[str, Origin] = {
    "demo": Demo(),
    "file": RatingsFile(),
    "folder": Folders(),
    "pictoria": Pictoria(),
}
LIBRARY_ORIGINS: dict[str, Origin] = {
    "demo": Demo(),
    "folder": Folders(),
    "list": PathList(),
    "pictoria": Pictoria(),
}

__all__ = [
    "LIBRARY_ORIGINS",
    "RATINGS_ORIGINS",
    "BadRow",
    "Judgements",
    "Judging",
    "LibraryLoad",
    "Origin",
    "RatingsLoad",
    "Settings",
    "empty_library",
    "with_log",
]
