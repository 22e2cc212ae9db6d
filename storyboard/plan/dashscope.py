"""Qwen through Alibaba Cloud's DashScope, with the official `dashscope` SDK (native protocol).

The SDK decides where requests go: `DASHSCOPE_HTTP_BASE_URL` (read when the SDK is imported) or
`dashscope.base_http_api_url` (read on every call), so international-region users
(https://dashscope-intl.aliyuncs.com/api/v1) and test servers need nothing from us; `--base-url` overrides both.
The SDK returns error replies instead of raising them, and raises `requests` exceptions for network failures.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from storyboard.errors import ProviderAuthError, ProviderUnavailable
from storyboard.http import (
    PLANNER_ERRORS,
    dashscope_api_key,
    describe,
    quiet_sdk_logger,
    requests_errors,
    shown_url,
    status_error,
)
from storyboard.plan.backend import Message


class DashScopeBackend:
    provider: ClassVar[str] = "dashscope"
    default_model: ClassVar[str | None] = "qwen-plus"
    key_env: ClassVar[str] = "DASHSCOPE_API_KEY"

    def __init__(self, model: str | None = None, *, base_url: str | None = None) -> None:
        self.model = model or self.default_model or ""
        self.base_url = base_url
        self._api_key = _api_key()
        self._options: dict[str, Any] = {}
        import dashscope  # noqa: F401  (here, not in the first request: importing takes seconds, not its timeout)

        quiet_sdk_logger("dashscope")

    def __repr__(self) -> str:
        return f"DashScopeBackend(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def where(self) -> str:
        import dashscope

        return shown_url(self.base_url or str(dashscope.base_http_api_url))

    def complete(self, messages: Sequence[Message], *, timeout: float) -> str:
        response = self._call(messages, timeout)
        if int(response.status_code) == HTTPStatus.BAD_REQUEST and "enable_thinking" in str(response.message) \
                and "enable_thinking" not in self._options:
            # Qwen3 "thinking" models refuse a non-streaming call unless thinking is turned off; a plan needs none.
            self._options["enable_thinking"] = False
            response = self._call(messages, timeout)
        return self._text(response)

    def _call(self, messages: Sequence[Message], timeout: float) -> Any:
        import requests
        from dashscope import Generation

        options: dict[str, Any] = dict(self._options)
        if self.base_url:
            options["base_address"] = self.base_url
        try:
            with requests_errors(f"DashScope at {self.where}", PLANNER_ERRORS, sdk="DashScope",
                                 broke_off="DashScope's reply"):
                return Generation.call(
                    model=self.model,
                    messages=[dict(m) for m in messages],
                    result_format="message",
                    response_format={"type": "json_object"},
                    api_key=self._api_key,
                    request_timeout=timeout,
                    **options,
                )
        except requests.Timeout:
            raise ProviderUnavailable(f"DashScope did not answer within {timeout:g} s") from None

    def _text(self, response: Any) -> str:
        status = int(response.status_code)
        if status == HTTPStatus.OK:
            output = response.output
            choices = getattr(output, "choices", None) or []
            message = choices[0].message if choices else None
            content = message.content if message is not None else getattr(output, "text", None)
            if content is None:
                return ""
            if isinstance(content, list):  # multimodal models answer in parts: [{"text": ...}, ...]
                return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
            return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        said = describe(f"{response.code or ''}: {response.message or ''}".strip(": "))
        detail = f"HTTP {status}" + (f" {said}" if said else "")
        raise status_error("DashScope", status, detail, key_env=self.key_env, model=self.model,
                           headers=response.headers)


def _api_key() -> str:
    key = dashscope_api_key()
    if not key:
        raise ProviderAuthError("no DashScope API key: set DASHSCOPE_API_KEY")
    return key
