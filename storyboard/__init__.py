"""storyboard: turn a story into a comic page.

    import storyboard
    result = storyboard.build("story.yaml", renderer="draft")

`build`, `build_many`, `variants`, their result types and `Session` are loaded on first use, so ``import storyboard``
stays light (it never imports torch; the diffusers renderer does, when a panel has to be drawn).
"""

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

from storyboard.errors import (
    BuildCancelled,
    BuildError,
    CheckError,
    ModelNotFound,
    PlannerError,
    RenderError,
    StoryboardError,
    StoryError,
)
from storyboard.resolve import PanelJob, final_prompt, resolve
from storyboard.story import Story, load_story

if TYPE_CHECKING:
    from storyboard.building import (
        BatchResult,
        BuildProgress,
        BuildResult,
        PanelResult,
        VariantsResult,
        build,
        build_many,
        variants,
    )
    from storyboard.session import Session

_LAZY = {
    "build": "storyboard.building",
    "build_many": "storyboard.building",
    "variants": "storyboard.building",
    "BatchResult": "storyboard.building",
    "BuildProgress": "storyboard.building",
    "BuildResult": "storyboard.building",
    "PanelResult": "storyboard.building",
    "VariantsResult": "storyboard.building",
    "Session": "storyboard.session",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'storyboard' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "BatchResult",
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
    "build_many",
    "final_prompt",
    "load_story",
    "resolve",
    "variants",
]
