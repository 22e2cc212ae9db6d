"""Any OpenAI-compatible chat-completions server, with the official `openai` SDK.

That covers OpenAI itself, DashScope's compatible mode (https://dashscope.aliyuncs.com/compatible-mode/v1),
Ollama (http://localhost:11434/v1), vLLM, llama.cpp and LM Studio: a server is configuration (`--base-url` or
`OPENAI_BASE_URL`), not a new class. The key (`OPENAI_API_KEY`) is optional when a base URL is given, since local
servers need none. The SDK's own retries are turned off: `storyboard.retry` retries every provider the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

from storyboard.errors import PlannerError, ProviderAuthError, ProviderRequestError, ProviderUnavailable
from storyboard.http import describe, keep_secret, reason, shown_url, status_error
from storyboard.plan.backend import Message


class OpenAIBackend:
    provider: ClassVar[str] = "openai"
    default_model: ClassVar[str | None] = None  # no model name means the same thing on every server
    key_env: ClassVar[str] = "OPENAI_API_KEY"

    def __init__(self, model: str | None = None, *, base_url: str | None = None) -> None:
        if not model:
            raise PlannerError("--provider openai needs --model (the name the server knows the model by, "
                               "e.g. qwen-plus on DashScope's compatible mode, llama3.1 on Ollama)")
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._api_key = keep_secret(os.environ.get("OPENAI_API_KEY", "").strip())
        if not self._api_key and not self.base_url:
            raise ProviderAuthError("no OpenAI API key: set OPENAI_API_KEY (a local server needs none: "
                                    "give its address with --base-url or OPENAI_BASE_URL)")
        self._json_mode = True
        self._extra_body: dict[str, Any] = {}
        self._client: Any = None
        self._sdk()  # here, not in the first request: importing the SDK takes a second, not its timeout

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def where(self) -> str:
        return shown_url(self.base_url or "https://api.openai.com/v1")

    def _sdk(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.OpenAI(api_key=self._api_key or "none", base_url=self.base_url, max_retries=0)
        return self._client

    def complete(self, messages: Sequence[Message], *, timeout: float) -> str:
        import openai

        options: dict[str, Any] = {"timeout": timeout}
        if not self._api_key:
            options["extra_headers"] = {"Authorization": openai.Omit()}  # send no Authorization header at all
        try:
            try:
                completion = self._create(messages, options)
            except openai.BadRequestError as exc:
                if self._json_mode and "response_format" in str(exc):
                    self._json_mode = False  # a server without JSON mode; the prompt asks for JSON anyway
                elif "enable_thinking" in str(exc) and not self._extra_body:
                    # Qwen3 "thinking" models (DashScope compatible mode) refuse a non-streaming call otherwise.
                    self._extra_body = {"enable_thinking": False}
                else:
                    raise
                completion = self._create(messages, options)
        except openai.APITimeoutError:
            raise ProviderUnavailable(f"{self.where} did not answer within {timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise ProviderUnavailable(f"connection to {self.where} failed ({reason(exc)})") from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APIError as exc:
            raise ProviderRequestError(f"{self.where} sent a reply that could not be read "
                                       f"({describe(exc)})") from None
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list):
            raise ProviderRequestError(
                f"{self.where} answered with something that is not a chat completion "
                f"({describe(completion, 60)!r}); is the base URL right?")
        if not choices:
            return ""
        return choices[0].message.content or ""

    def _create(self, messages: Sequence[Message], options: dict[str, Any]) -> Any:
        if self._json_mode:
            options = {**options, "response_format": {"type": "json_object"}}
        if self._extra_body:
            options = {**options, "extra_body": self._extra_body}
        return self._sdk().chat.completions.create(model=self.model, messages=list(messages), **options)

    def _status_error(self, exc: Any) -> PlannerError:
        status = exc.status_code
        body = exc.body
        if isinstance(body, dict):
            said = ": ".join(str(part) for part in (body.get("code"), body.get("message")) if part)
        else:
            said = str(body or exc.message or "")
        detail = f"HTTP {status}" + (f" {describe(said)}" if said else "")
        return status_error(self.where, status, detail, key_env=self.key_env, model=self.model,
                            headers=exc.response.headers,
                            not_found="check --model, and that the base URL is where the API starts "
                                      "(it usually ends in /v1)")
