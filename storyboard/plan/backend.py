"""The seam every LLM provider plugs into: chat messages in, the reply's text out.

A backend makes ONE attempt per `complete` call and reports failure by raising one of:

- `ProviderAuthError`: no key, or the key was rejected (401/403). Never retried.
- `ProviderUnavailable`: rate limit (429), server error (5xx), timeout, dropped connection. Retried with backoff.
- `ProviderRequestError`: any other refusal (unknown model, bad parameter, content filter). Never retried.

Retrying (`storyboard.retry`), repairing and writing the story live elsewhere, once for every provider. A new
provider is one module with a class like the ones below plus one line in `PROVIDERS`. Messages in these
exceptions are shown to users, so they pass through `describe` (`storyboard.http`, shared with the remote
renderers), which never lets an API key through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal, Protocol, TypedDict

from storyboard.errors import PlannerError
from storyboard.http import describe, keep_secret, reason, redact, retry_after, shown_url, status_error
from storyboard.registry import load_registered

__all__ = ["PROVIDERS", "ChatBackend", "Message", "backend_class", "describe", "get_backend", "keep_secret", "reason",
           "redact", "retry_after", "shown_url", "status_error"]


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatBackend(Protocol):
    provider: ClassVar[str]  # as on the command line: "dashscope"
    default_model: ClassVar[str | None]  # None: the user must name one
    key_env: ClassVar[str]  # the environment variable that holds the API key
    model: str

    def complete(self, messages: Sequence[Message], *, timeout: float) -> str:
        """Send `messages`, asking for a JSON object; return the reply's text. One attempt, at most `timeout` s."""
        ...


PROVIDERS: dict[str, str] = {
    "dashscope": "storyboard.plan.dashscope:DashScopeBackend",
    "openai": "storyboard.plan.openai:OpenAIBackend",
}
DEFAULT_PROVIDER = "dashscope"


def backend_class(provider: str) -> type[ChatBackend]:
    """The backend class for `provider`, imported only now (SDK imports are not free)."""
    return load_registered(PROVIDERS, provider, "provider", PlannerError)


def get_backend(provider: str, *, model: str | None = None, base_url: str | None = None) -> ChatBackend:
    return backend_class(provider)(model=model, base_url=base_url)
