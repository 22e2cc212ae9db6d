"""What every remote service storyboard talks to shares: keys kept out of sight, HTTP statuses turned into errors.

LLM providers (`storyboard.plan`) and remote renderers (`storyboard.render.dashscope`, `storyboard.render.a1111`)
both use it, so a 429 or a 401 means the same thing whichever of them meets it. Which error classes come out is
chosen by the caller (`PLANNER_ERRORS`, `RENDERER_ERRORS`); `storyboard.retry` retries the `ServiceUnavailable`
ones.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from storyboard.errors import (
    ProviderAuthError,
    ProviderRequestError,
    ProviderUnavailable,
    RendererAuthError,
    RendererRequestError,
    RendererUnavailable,
    ServiceAuthError,
    ServiceRefused,
    ServiceUnavailable,
    StoryboardError,
)


@dataclass(frozen=True)
class ErrorKinds:
    """The error classes one kind of client raises for the three ways a service fails."""

    auth: type[ServiceAuthError]
    unavailable: type[ServiceUnavailable]
    refused: type[ServiceRefused]


PLANNER_ERRORS = ErrorKinds(ProviderAuthError, ProviderUnavailable, ProviderRequestError)
RENDERER_ERRORS = ErrorKinds(RendererAuthError, RendererUnavailable, RendererRequestError)


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
                 not_found: str = "", errors: ErrorKinds = PLANNER_ERRORS) -> StoryboardError:
    """The error for an HTTP error reply, the same for every service: auth errors stop at once, rate limits
    and server errors are retried (honouring Retry-After), anything else is a request the server refused.
    `detail` names the status and what the server said; `not_found` is a hint for 404; `errors` says whether
    a planner or a renderer met it."""
    if status == 401:
        return errors.auth(f"{where} rejected the API key ({detail}); check {key_env}")
    if status == 403:
        return errors.auth(f"{where} refused access ({detail}); check {key_env} and that it may use {model}")
    if status == 429:
        return errors.unavailable(f"{where} is rate limiting ({detail})", retry_after=retry_after(headers))
    if status >= 500 or status in (408, 409):
        return errors.unavailable(f"{where} server error ({detail})", retry_after=retry_after(headers))
    if status == 404 and not_found:
        return errors.refused(f"{where} answered {detail}: {not_found}")
    return errors.refused(f"{where} refused the request for {model} ({detail})")


@contextmanager
def requests_errors(where: str, errors: ErrorKinds, *, sdk: str | None = None,
                    broke_off: str | None = None) -> Iterator[None]:
    """The `requests` failures of the block raised as `errors`, the same way for every client of a service.

    A refused or dropped connection is worth another try. Without `sdk` (a plain request) so is any other failure
    of `requests`. With `sdk` (the block calls that service's SDK, "DashScope", which reads the reply itself) a
    reply that broke off is retried (`broke_off` names it; "the reply from <where>" by default), and any other
    failure, `requests`' or the SDK's own ValueError, TypeError, KeyError or AttributeError, is a reply it could
    not read: a proxy or a wrong address, which no retry mends. A timeout is left to the caller, which knows what
    it asked for and how long it gave.
    """
    import requests

    try:
        yield
    except requests.Timeout:
        raise
    except requests.ConnectionError as exc:
        raise errors.unavailable(f"connection to {where} failed ({reason(exc)})") from None
    except (requests.RequestException, ValueError, TypeError, KeyError, AttributeError) as exc:
        if sdk is None:
            if not isinstance(exc, requests.RequestException):
                raise
            raise errors.unavailable(f"{where}: {describe(exc)}") from None
        if isinstance(exc, requests.exceptions.ChunkedEncodingError):
            raise errors.unavailable(f"{broke_off or 'the reply from ' + where} broke off before its end") from None
        raise errors.refused(f"{where} sent a reply that is not a {sdk} response ({type(exc).__name__}); "
                             "is the base URL right?") from None


def quiet_sdk_logger(name: str) -> None:
    """Keep an SDK's log records off the terminal unless the user set logging up.

    A logger without a handler of its own goes to Python's last-resort handler, which prints warnings and errors
    (the dashscope SDK logs a traceback for every failed request) on stderr; each failure is already reported as
    one line. A handler configured by the user, or by the SDK's own switch (DASHSCOPE_LOGGING_LEVEL), still
    receives them.
    """
    logger = logging.getLogger(name)
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def dashscope_api_key() -> str:
    """The DashScope key the way its SDK finds it: DASHSCOPE_API_KEY, then DASHSCOPE_API_KEY_FILE_PATH, then
    ~/.dashscope/api_key; "" when there is none. Registered with `keep_secret`."""
    import os

    key = os.environ.get("DASHSCOPE_API_KEY", "").strip()
    if not key:
        from dashscope.common.api_key import get_default_api_key
        from dashscope.common.error import AuthenticationError

        try:
            key = (get_default_api_key() or "").strip()
        except (AuthenticationError, OSError):
            key = ""
    return keep_secret(key)


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
