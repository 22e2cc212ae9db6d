"""storyboard: turn a story into a comic page.

    import storyboard
    result = storyboard.build("story.yaml", renderer="draft")

`build`, `variants`, their result types and `Session` are loaded on first use, so ``import storyboard`` stays
light (it never imports torch; the diffusers renderer does, when a panel has to be drawn).
"""

__version__ = "0.1.0"

import importlib  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from storyboard.errors import (  # noqa: E402
    BuildCancelled,
    BuildError,
    CheckError,
    ModelNotFound,
    PlannerError,
    RenderError,
    StoryboardError,
    StoryError,
)
from storyboard.resolve import PanelJob, final_prompt, resolve  # noqa: E402
from storyboard.story import Story, load_story  # noqa: E402

if TYPE_CHECKING:
    from storyboard.build import BuildProgress, BuildResult, PanelResult, VariantsResult, build, variants
    from storyboard.session import Session

_LAZY = {
    "build": "storyboard.build",
    "variants": "storyboard.build",
    "BuildProgress": "storyboard.build",
    "BuildResult": "storyboard.build",
    "PanelResult": "storyboard.build",
    "VariantsResult": "storyboard.build",
    "Session": "storyboard.session",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'storyboard' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    # Importing the submodule storyboard.build set the package's `build` to that module; the function wins.
    globals()[name] = value
    return value


__all__ = [
    "BuildCancelled",
    "BuildError",
    "BuildProgress",
    "BuildResult",
    "CheckError",
    "ModelNotFound",
    "PanelJob",
    "PanelResult",
    "PlannerError",
    "RenderError",
    "Session",
    "Story",
    "StoryError",
    "StoryboardError",
    "VariantsResult",
    "build",
    "final_prompt",
    "load_story",
    "resolve",
    "variants",
]
