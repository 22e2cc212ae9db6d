"""storyboard: turn a story into a comic page."""

__version__ = "0.1.0"

from storyboard.errors import (  # noqa: E402
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

__all__ = [
    "BuildError",
    "CheckError",
    "ModelNotFound",
    "PanelJob",
    "PlannerError",
    "RenderError",
    "Story",
    "StoryError",
    "StoryboardError",
    "final_prompt",
    "load_story",
    "resolve",
]
