"""The seam every LLM provider plugs into: chat messages in, the reply's text out.

A backend makes ONE attempt per `complete` call and reports failure by raising one of:

- `ProviderAuthError`: no key, or the key was rejected (401/403). Never retried.
- `ProviderUnavailable`: rate limit (429), server error (5xx), timeout, dropped connection. Retried with backoff.
- `ProviderRequestError`: any other refusal (unknown model, bad parameter, content filter). Never retried.

Retrying, repairing and writing the story live elsewhere, once for every provider. A new provider is one module
with a class like the ones below plus one line in `PROVIDERS`. Messages in these exceptions are shown to users,
so they pass through `describe`, which never lets an API key through.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import ClassVar, Literal, Protocol, TypedDict

from storyboard.errors import PlannerError, ProviderAuthError, ProviderRequestError, ProviderUnavailable


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
    try:
        target = PROVIDERS[provider]
    except KeyError:
        raise PlannerError(f"unknown provider {provider!r} (choose from: {', '.join(PROVIDERS)})") from None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def get_backend(provider: str, *, model: str | None = None, base_url: str | None = None) -> ChatBackend:
    return backend_class(provider)(model=model, base_url=base_url)


_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;})\]]+")
_SECRETS: set[str] = set()


def keep_secret(value: str) -> str:
    """Register an API key so that `redact` hides it from everything storyboard prints or writes; return it."""
    if value:
        _SECRETS.add(value)
    return value


def redact(text: str) -> str:
    """`text` with every registered key and every bearer token replaced by ***.

    Servers and proxies sometimes echo request headers back (in error bodies, even in replies); the key must not
    reach the user's terminal, logs, CI output or story file through them.
    """
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if len(secret) >= 8:
            text = text.replace(secret, "***")
        else:  # a short "key" is masked only where it stands alone, so that ordinary words survive
            text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", "***", text)
    return _BEARER.sub(r"\1***", text)


def describe(text: object, limit: int = 200) -> str:
    """Server-provided text made fit for one line of an error: keys removed, whitespace collapsed, shortened."""
    out = " ".join(redact(str(text)).split())
    return out if len(out) <= limit else out[: limit - 1] + "…"


def shown_url(url: str) -> str:
    """`url` fit to print: without user:password@ or a query string, either of which may hold a credential."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "(the configured URL)"


def retry_after(headers: object) -> float | None:
    """Seconds a server asked us to wait (`retry-after-ms` or `Retry-After` in seconds), if it said."""
    if not headers:
        return None
    try:
        items = {str(k).lower(): str(v) for k, v in dict(headers).items()}  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(items[name]) * scale
        except (KeyError, ValueError):
            continue
        if seconds >= 0:
            return seconds
    return None


def status_error(where: str, status: int, detail: str, *, key_env: str, model: str, headers: object,
                 not_found: str = "") -> PlannerError:
    """The error for an HTTP error reply, the same for every provider: auth errors stop at once, rate limits
    and server errors are retried (honouring Retry-After), anything else is a request the server refused.
    `detail` names the status and what the server said; `not_found` is a hint for 404."""
    if status == 401:
        return ProviderAuthError(f"{where} rejected the API key ({detail}); check {key_env}")
    if status == 403:
        return ProviderAuthError(f"{where} refused access ({detail}); check {key_env} and that it may use {model}")
    if status == 429:
        return ProviderUnavailable(f"{where} is rate limiting ({detail})", retry_after=retry_after(headers))
    if status >= 500 or status in (408, 409):
        return ProviderUnavailable(f"{where} server error ({detail})", retry_after=retry_after(headers))
    if status == 404 and not_found:
        return ProviderRequestError(f"{where} answered {detail}: {not_found}")
    return ProviderRequestError(f"{where} refused the request for {model} ({detail})")


def reason(exc: BaseException) -> str:
    """The root cause of a connection failure in a few words ('connection refused', 'host name not resolved')."""
    import socket
    import ssl

    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        node = todo.pop(0)
        if not isinstance(node, BaseException) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ConnectionRefusedError):
            return "connection refused"
        if isinstance(node, socket.gaierror):
            return "host name not resolved"
        if isinstance(node, ConnectionResetError):
            return "connection reset"
        if isinstance(node, ssl.SSLError):
            return f"TLS error: {node.reason or node}"
        text = str(node).lower()
        if "refused" in text:
            return "connection refused"
        if "message body" in text or "incomplete" in text:
            return "the reply broke off before its end"
        if "disconnected" in text or "aborted" in text or "without sending" in text:
            return "the server closed the connection without answering"
        todo.extend([node.__cause__, node.__context__, getattr(node, "reason", None), *node.args[:1]])
    return type(exc).__name__
