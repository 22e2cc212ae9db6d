"""Alibaba Cloud DashScope image generation (Wan/wanx, Qwen-Image...), with the official `dashscope` SDK.

Each panel is one asynchronous ``ImageSynthesis`` task: submitted with the final prompt, negative prompt, seed (one
above the service's 2**31 - 1 is sent as its remainder by 2**31, recorded in the panel's info as ``seed_sent``) and
size (``prompt_extend`` off, since the prompt is already final, and no watermark), polled until it ends, and its
picture downloaded from the address the task names. `render.model` (or ``--model``) names the service's model,
e.g. ``wan2.2-t2i-flash``; steps, guidance and the scheduler are not sent (the service chooses them).

The key and the address are the planner's: ``DASHSCOPE_API_KEY`` (or the SDK's key file), and
``DASHSCOPE_HTTP_BASE_URL`` (read by the SDK when it is imported) or ``--base-url`` for the international region
(https://dashscope-intl.aliyuncs.com/api/v1).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from PIL import Image

from storyboard.errors import RendererAuthError, RendererRequestError, RendererUnavailable
from storyboard.http import (
    RENDERER_ERRORS,
    dashscope_api_key,
    describe,
    quiet_sdk_logger,
    reason,
    requests_errors,
    shown_url,
    status_error,
)
from storyboard.render.remote import DEFAULT_TIMEOUT, REQUEST_TIMEOUT, RemoteRenderer, open_image
from storyboard.resolve import PanelJob
from storyboard.retry import Deadline

VERSION = "1"
KEY_ENV = "DASHSCOPE_API_KEY"
POLL_ENV = "STORYBOARD_POLL_SECONDS"
SEEDS = 2**31  # the service takes seeds from 0 to 2**31 - 1
_RUNNING = {"PENDING", "RUNNING", "SUSPENDED"}


class DashScopeRenderer(RemoteRenderer):
    name: ClassVar[str] = "dashscope"
    version: ClassVar[str] = VERSION
    service: ClassVar[str] = "dashscope"

    def __init__(self, *, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 notify: Callable[[str], None] | None = None, poll: float | None = None) -> None:
        super().__init__(base_url=base_url, timeout=timeout, retries=retries, notify=notify)
        if poll is None:
            try:
                poll = float(os.environ.get(POLL_ENV) or 1.0)
            except ValueError:
                poll = 1.0
        self.poll = max(0.0, poll)  # seconds between the first looks at a task; grows to 5 s as the SDK's does
        self._api_key = ""

    def _where(self) -> str:
        import dashscope

        return f"DashScope at {shown_url(self.base_url or str(dashscope.base_http_api_url))}"

    def _prepare(self, jobs: Sequence[PanelJob]) -> None:
        for job in jobs:
            if "/" in job.model or job.model.lower().endswith((".safetensors", ".ckpt")):
                raise RendererRequestError(
                    f"the dashscope renderer draws with a DashScope image model, not {job.model!r}: set "
                    "render.model (or --model) to one, e.g. wan2.2-t2i-flash or qwen-image")
        self._api_key = dashscope_api_key()
        if not self._api_key:
            raise RendererAuthError(f"no DashScope API key: set {KEY_ENV}")
        import dashscope  # noqa: F401  (here, not in the first request: importing takes a second, not its timeout)

        quiet_sdk_logger("dashscope")

    def _draw(self, job: PanelJob, deadline: Deadline) -> tuple[Image.Image, dict[str, Any]]:
        submitted = self._request(job, "when asked to draw", lambda s: self._submit(job, s), deadline,
                                  REQUEST_TIMEOUT)
        task_id = (submitted.output or {}).get("task_id")
        if not task_id:
            raise RendererRequestError(f"{self._where()} accepted {job.label} without a task id; "
                                       "is the base URL right?")
        output = self._wait(job, task_id, deadline)
        results = output.get("results") or []
        url = next((r.get("url") for r in results if isinstance(r, dict) and r.get("url")), None)
        if not url:
            said = next((f"{r.get('code')}: {r.get('message')}" for r in results
                         if isinstance(r, dict) and r.get("code")), "no image in the result")
            raise RendererRequestError(f"{self._where()} did not draw {job.label} ({describe(said)})")
        data = self._request(job, "with the picture", lambda s: _download(url, s), deadline, REQUEST_TIMEOUT)
        info: dict[str, Any] = {"task_id": str(task_id)}
        if job.seed >= SEEDS:  # a larger seed (an anchor's derived one, say) is sent folded into the service's range
            info["seed_sent"] = job.seed % SEEDS
        return open_image(data, self._where(), job), info

    def _submit(self, job: PanelJob, seconds: float) -> Any:
        from dashscope import ImageSynthesis

        response = self._sdk(lambda: ImageSynthesis.async_call(
            model=job.model,
            prompt=job.prompt,
            negative_prompt=job.negative_prompt or None,
            n=1,
            size=f"{job.width}*{job.height}",
            seed=job.seed % SEEDS,
            prompt_extend=False,
            watermark=False,
            api_key=self._api_key,
            base_address=self.base_url,
            request_timeout=seconds,
        ))
        return self._checked(response, job)

    def _wait(self, job: PanelJob, task_id: str, deadline: Deadline) -> dict[str, Any]:
        """Look at the task until it ends, as the SDK's own `wait` does, but within the panel's deadline."""
        pause, looks = self.poll, 0
        while True:
            response = self._request(job, "about its task", lambda s: self._fetch(task_id, job, s), deadline,
                                     REQUEST_TIMEOUT)
            output = response.output if isinstance(response.output, dict) else {}
            status = str(output.get("task_status") or "UNKNOWN")
            if status == "SUCCEEDED":
                return output
            if status not in _RUNNING:
                said = describe(f"{output.get('code') or status}: {output.get('message') or ''}".strip(": "))
                raise RendererRequestError(f"{self._where()} could not draw {job.label} (task {status}: "
                                           f"{said})")
            if pause >= deadline.left():
                raise RendererUnavailable(f"{self._where()} had not finished {job.label} within "
                                          f"{deadline.seconds:g} s (task {status}); try a longer --timeout")
            time.sleep(pause)
            looks += 1
            if looks % 3 == 0:
                pause = min(max(pause * 2, 0.001), 5.0)

    def _fetch(self, task_id: str, job: PanelJob, seconds: float) -> Any:
        from dashscope import ImageSynthesis

        # `ImageSynthesis.fetch` takes no address; the SDK's base class does, so that --base-url reaches the poll.
        return self._checked(self._sdk(lambda: super(ImageSynthesis, ImageSynthesis).fetch(
            task_id, api_key=self._api_key, base_address=self.base_url)), job)

    def _sdk(self, call: Callable[[], Any]) -> Any:
        """`call` with the SDK's network failures turned into ours; a timeout is said by `_request`."""
        with requests_errors(self._where(), RENDERER_ERRORS, sdk="DashScope"):
            return call()

    def _checked(self, response: Any, job: PanelJob) -> Any:
        status = int(response.status_code)
        if status == HTTPStatus.OK:
            return response
        said = describe(f"{response.code or ''}: {response.message or ''}".strip(": "))
        detail = f"HTTP {status}" + (f" {said}" if said else "")
        raise status_error(self._where(), status, detail, key_env=KEY_ENV, model=job.model,
                           headers=response.headers, errors=RENDERER_ERRORS)


def _download(url: str, seconds: float) -> bytes:
    """The picture at `url` (a signed storage address, valid for a day): no key goes with it."""
    import requests

    shown = shown_url(url)
    try:
        response = requests.get(url, timeout=seconds)
    except requests.Timeout:
        raise
    except requests.RequestException as exc:
        raise RendererUnavailable(f"downloading the picture from {shown} failed ({reason(exc)})") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise RendererUnavailable(f"{shown} answered HTTP {response.status_code} for the picture")
    if response.status_code != 200:
        raise RendererRequestError(f"{shown} answered HTTP {response.status_code} for the picture (a result "
                                   "address is valid for 24 hours)")
    return response.content
