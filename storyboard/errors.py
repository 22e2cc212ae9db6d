"""The exceptions storyboard raises for problems a user can fix.

Everything a user is meant to read derives from `StoryboardError`; the CLI prints its
message as one `Error: ...` line. Any other exception escaping the library is a bug.

    StoryboardError
    ├── StoryError                   the story file (with file, line and field)
    │   └── StoryChanged             it kept changing while storyboard was writing an edit into it
    ├── OptionError                  an option names what storyboard does not have, or what does not take it
    ├── RenderError                  a renderer could not draw a panel
    │   ├── ModelNotFound
    │   ├── RendererAuthError        ┐
    │   ├── RendererUnavailable      ├ a remote renderer (DashScope, an A1111 server)
    │   └── RendererRequestError     ┘
    ├── PlannerError                 the LLM planner
    │   ├── ProviderAuthError        ┐
    │   ├── ProviderUnavailable      ├ the LLM provider
    │   ├── ProviderRequestError     ┘
    │   └── ReplyInvalid
    ├── BuildError                   writing the outputs
    │   ├── FolderBusy               another build or server holds the output folder
    │   └── BuildCancelled           stopped on request; finished panels are kept
    ├── CheckError                   scoring a built page
    ├── ProvenanceError              `storyboard info` on a file that does not say how it was made
    └── ServeError                   the live server cannot start

A remote service, whether it plans or draws, fails in one of three ways, and each `Provider…` and `Renderer…`
error also derives from the matching `Service…` class: `ServiceAuthError` (no key, or the key was rejected: never
retried), `ServiceUnavailable` (rate limit, server error, timeout, dropped connection: retried with backoff) and
`ServiceRefused` (any other refusal: never retried). `storyboard.retry` and `storyboard.http` speak only of these.

Callers decide by an error's type, never by its words: the live server answers 409 to `FolderBusy` and 400 to the
others. Anything else that escapes is a bug, reported as the one line `internal_error` writes.
"""

from __future__ import annotations

from pathlib import Path

MAX_SHOWN = 200  # characters of a value an error line shows before it says how long the value is
MAX_LINE = 1000  # characters of a whole error line, whatever it quotes
_SEPARATORS = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def one_line(text: str) -> str:
    """`text` with line breaks, line separators and other control characters written as escapes, so that a message
    built from a user's value stays one line (and cannot forge a second `Error:` line)."""
    return "".join(_SEPARATORS.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 32 or 127 <= ord(c) < 160 else c)
                   for c in text)


def shorten(text: str, most: int = MAX_SHOWN) -> str:
    """`text` as an error line shows a value: its start, and its size when it is longer than `most` characters."""
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} characters)"


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
        shown = f"{shorten(field)}: " if field else ""
        super().__init__(shorten(one_line(where + shown + message), MAX_LINE))


class StoryChanged(StoryError):
    """The story file changed on disk (the user saved it) while storyboard was writing an edit into it, again and
    again: nothing was written. A conflict, not a mistake in the file."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class OptionError(StoryboardError):
    """An option names something storyboard does not have (an unknown renderer), or that the chosen renderer does
    not take (``--base-url`` for the draft renderer)."""


class ServiceAuthError(StoryboardError):
    """No API key, or a remote service rejected it (401/403): retrying cannot help."""


class ServiceUnavailable(StoryboardError):
    """Rate limited, a server error, a timeout or a dropped connection: worth another try after a pause."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds the server asked us to wait, if it said


class ServiceRefused(StoryboardError):
    """A remote service refused the request for another reason (unknown model, bad parameter, content filter)."""


class RenderError(StoryboardError):
    """A renderer could not draw a panel."""


class ModelNotFound(RenderError):
    """The model named by the story or `--model` could not be found or loaded."""


class RendererAuthError(RenderError, ServiceAuthError):
    """A remote renderer has no key, or rejected it."""


class RendererUnavailable(RenderError, ServiceUnavailable):
    """A remote renderer is rate limiting, failing, unreachable or too slow."""


class RendererRequestError(RenderError, ServiceRefused):
    """A remote renderer refused to draw a panel (unknown model, bad size, content filter)."""


class PlannerError(StoryboardError):
    """The LLM planner could not produce valid panels."""


class ProviderAuthError(PlannerError, ServiceAuthError):
    """No API key, or the LLM provider rejected it (401/403)."""


class ProviderUnavailable(PlannerError, ServiceUnavailable):
    """The LLM provider is rate limiting, failing, unreachable or too slow."""


class ProviderRequestError(PlannerError, ServiceRefused):
    """The LLM provider refused the request (unknown model, bad parameter, content filter)."""


class ReplyInvalid(PlannerError):
    """The model's replies never held a valid plan, even after it was shown what was wrong."""


class BuildError(StoryboardError):
    """The build could not write its outputs."""


class FolderBusy(BuildError):
    """Another process (a build, a live server) holds the lock on an output folder: a conflict, not a mistake."""


class BuildCancelled(BuildError):
    """A build was stopped on request (a newer save of the story arrived); every finished panel is kept."""


class ExportError(StoryboardError):
    """An export could not be made (its encoder failed, a picture it needs is missing)."""


class CheckError(StoryboardError):
    """A built page cannot be scored: no build yet, a file of it missing, or a model that is not a CLIP."""


class ProvenanceError(StoryboardError):
    """A file `storyboard info` was given cannot say how it was made: missing, not a PNG, not drawn by storyboard,
    or its provenance is damaged."""


class ServeError(StoryboardError):
    """The server cannot start (the address is taken, the host does not exist)."""


def internal_error(exc: BaseException) -> str:
    """The one line that reports a bug (an exception that is not a `StoryboardError`) where no traceback is shown.

    The CLI and the live page both print it after ``Error:``, so a bug reads the same wherever it surfaces.
    """
    return f"internal error ({type(exc).__name__}: {exc})"
