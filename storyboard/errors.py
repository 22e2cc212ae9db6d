"""The exceptions storyboard raises for problems a user can fix.

Everything a user is meant to read derives from `StoryboardError`; the CLI prints its
message as one `Error: ...` line. Any other exception escaping the library is a bug.
"""

from __future__ import annotations

from pathlib import Path


class StoryboardError(Exception):
    """Base class of every error storyboard reports to users."""


class StoryError(StoryboardError):
    """The story file cannot be read or does not describe a valid story."""

    def __init__(self, message: str, *, file: str | Path | None = None,
                 line: int | None = None, field: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.problem = message
        where = ""
        if self.file:
            where = self.file + (f":{line}" if line else "") + ": "
        elif line:
            where = f"line {line}: "
        super().__init__(where + (f"{field}: " if field else "") + message)


class RenderError(StoryboardError):
    """A renderer could not draw a panel."""


class ModelNotFound(RenderError):
    """The model named by the story or `--model` could not be found or loaded."""


class PlannerError(StoryboardError):
    """The LLM planner could not produce valid panels."""


class BuildError(StoryboardError):
    """The build could not write its outputs."""
