"""Any server speaking the AUTOMATIC1111 web UI's API: A1111 itself, Forge, SD.Next (started with ``--api``).

Each panel is one ``POST /sdapi/v1/txt2img`` with the story's final prompt, negative prompt, seed, steps, CFG scale
(`guidance`), size and sampler (`render.scheduler`, by its A1111 name), drawn with the checkpoint that
`render.model` (or ``--model``) names as the server knows it: before the first panel, ``GET /sdapi/v1/sd-models``
checks that the server has it. The address comes from ``--base-url`` or ``STORYBOARD_A1111_URL``; a server started
with ``--api-auth user:password`` needs ``STORYBOARD_A1111_AUTH=user:password``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from PIL import Image

from storyboard.errors import RendererAuthError, RendererRequestError
from storyboard.http import RENDERER_ERRORS, describe, keep_secret, requests_errors, shown_url, status_error
from storyboard.render.remote import DEFAULT_TIMEOUT, REQUEST_TIMEOUT, RemoteRenderer, open_image
from storyboard.resolve import PanelJob
from storyboard.retry import Deadline
from storyboard.schedulers import SCHEDULERS

VERSION = "1"
URL_ENV = "STORYBOARD_A1111_URL"
AUTH_ENV = "STORYBOARD_A1111_AUTH"
API = "/sdapi/v1"


class A1111Renderer(RemoteRenderer):
    name: ClassVar[str] = "a1111"
    version: ClassVar[str] = VERSION
    service: ClassVar[str] = "a1111"

    def __init__(self, *, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 notify: Callable[[str], None] | None = None) -> None:
        super().__init__(base_url=_server_url(base_url or os.environ.get(URL_ENV, "").strip() or None),
                         timeout=timeout, retries=retries, notify=notify)
        auth = os.environ.get(AUTH_ENV, "")
        user, colon, password = auth.partition(":")
        if auth and not colon:
            raise RendererAuthError(f"{AUTH_ENV} must be user:password, as given to the web UI's --api-auth")
        self._auth = (user, keep_secret(password)) if auth else None
        if auth:  # the header it travels in, should a server echo it back
            keep_secret(base64.b64encode(auth.encode()).decode())
        self._checkpoints: dict[str, str] = {}
        self._session: Any = None

    def identity(self, job: PanelJob) -> dict[str, Any]:
        return {**super().identity(job), "sampler": _sampler(job)}

    def _where(self) -> str:
        return f"the A1111 server at {shown_url(self.base_url or '')}"

    # ------------------------------------------------------------------ before the first panel

    def _prepare(self, jobs: Sequence[PanelJob]) -> None:
        if not self.base_url:
            raise RendererRequestError(f"the a1111 renderer needs the server's address: --base-url "
                                       f"http://127.0.0.1:7860 (or {URL_ENV})")
        import requests

        self._session = requests.Session()
        if self._auth:
            self._session.auth = self._auth
        wanted = sorted({job.model for job in jobs})
        models = self._request(jobs[0], "with its checkpoints",
                               lambda seconds: self._call("GET", "/sd-models", None, seconds, wanted[0]),
                               Deadline(REQUEST_TIMEOUT))
        names = _checkpoint_names(models)
        for model in wanted:
            if model not in names:
                known = sorted({entry.get("model_name") or entry.get("title") for entry in models
                                if isinstance(entry, dict)} - {None})
                listed = ", ".join(known[:12]) + (", …" if len(known) > 12 else "") if known else "none"
                raise RendererRequestError(
                    f"{self._where()} has no checkpoint {model!r}; set render.model (or --model) to one of its "
                    f"checkpoints: {listed}")
            self._checkpoints[model] = names[model]

    # ------------------------------------------------------------------ one panel

    def _draw(self, job: PanelJob, deadline: Deadline) -> tuple[Image.Image, dict[str, Any]]:
        payload = txt2img_payload(job, self._checkpoints.get(job.model, job.model))
        reply = self._request(job, "with a picture",
                              lambda seconds: self._call("POST", "/txt2img", payload, seconds, job.model), deadline)
        images = reply.get("images") if isinstance(reply, dict) else None
        if not isinstance(images, list) or not images or not isinstance(images[0], str):
            raise RendererRequestError(f"{self._where()} answered without an image for {job.label}; "
                                       "is it an A1111-compatible API?")
        try:
            data = base64.b64decode(images[0].split(",", 1)[-1], validate=False)
        except (binascii.Error, ValueError):
            raise RendererRequestError(f"{self._where()} sent an image for {job.label} that is not "
                                       "base64") from None
        info: dict[str, Any] = {}
        try:
            said = json.loads(reply.get("info") or "{}")
        except (TypeError, ValueError):
            said = {}
        if isinstance(said, dict):
            for ours, theirs in (("server_model", "sd_model_name"), ("server_model_hash", "sd_model_hash")):
                if said.get(theirs):
                    info[ours] = str(said[theirs])
            if said.get("seed") not in (None, job.seed):
                raise RendererRequestError(f"{self._where()} drew {job.label} with seed {said['seed']} "
                                           f"instead of {job.seed}")
        return open_image(data, self._where(), job), info

    # ------------------------------------------------------------------ the wire

    def _call(self, method: str, path: str, payload: dict[str, Any] | None, seconds: float, model: str) -> Any:
        url = f"{self.base_url}{API}{path}"
        with requests_errors(self._where(), RENDERER_ERRORS):  # a timeout is said by `_request`
            response = self._session.request(method, url, json=payload, timeout=seconds)
        if response.status_code != 200:
            said = _error_text(response)
            detail = f"HTTP {response.status_code}" + (f" {said}" if said else "")
            raise status_error(self._where(), response.status_code, detail, key_env=AUTH_ENV, model=model,
                               headers=response.headers, errors=RENDERER_ERRORS,
                               not_found="is the web UI started with --api, and is the address the one it "
                                         "prints (e.g. http://127.0.0.1:7860)?")
        try:
            return response.json()
        except ValueError:
            raise RendererRequestError(f"{self._where()} sent a reply that is not JSON; is it an A1111-compatible "
                                       "API?") from None


def txt2img_payload(job: PanelJob, checkpoint: str) -> dict[str, Any]:
    """The ``/sdapi/v1/txt2img`` request for `job`, drawn with the server's `checkpoint`."""
    payload: dict[str, Any] = {
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "seed": job.seed,
        "subseed_strength": 0,
        "steps": job.steps,
        "cfg_scale": job.guidance,
        "width": job.width,
        "height": job.height,
        "batch_size": 1,
        "n_iter": 1,
        "send_images": True,
        "save_images": False,
        "override_settings": {"sd_model_checkpoint": checkpoint},
        "override_settings_restore_afterwards": True,
    }
    sampler = _sampler(job)
    if sampler is not None:
        # The label A1111 writes into its own PNGs ("DPM++ 2M Karras"); servers that keep the scheduler apart
        # (A1111 1.9+, Forge) split it themselves.
        payload["sampler_name"] = sampler
    return payload


def _sampler(job: PanelJob) -> str | None:
    """The A1111 sampler for the job's scheduler; None for `default` (the server's own choice)."""
    name = dict(job.options).get("scheduler", "default")
    spec = SCHEDULERS.get(name)
    return None if spec is None or spec.cls is None else spec.label


def _server_url(url: str | None) -> str | None:
    """The server's root address, accepting it with or without a trailing /sdapi/v1."""
    if url is None:
        return None
    from urllib.parse import urlsplit

    url = url.strip().rstrip("/")
    if url.endswith(API):
        url = url[: -len(API)]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RendererRequestError(f"--base-url must be an http:// or https:// address such as "
                                   f"http://127.0.0.1:7860 (got {shown_url(url)!r})")
    return url


def _checkpoint_names(models: Any) -> dict[str, str]:
    """Every name a checkpoint of `/sd-models` may be called by (title, name, file name, hash) -> its title."""
    names: dict[str, str] = {}
    if not isinstance(models, list):
        raise RendererRequestError("the server's list of checkpoints is not a list; is it an A1111-compatible API?")
    for entry in models:
        if not isinstance(entry, dict) or not entry.get("title"):
            continue
        title = str(entry["title"])
        filename = str(entry.get("filename") or "").replace("\\", "/")
        for name in (title, title.split(" [")[0], entry.get("model_name"), filename.rsplit("/", 1)[-1],
                     entry.get("hash"), entry.get("sha256")):
            if name:
                names.setdefault(str(name), title)
    return names


def _error_text(response: Any) -> str:
    """What an A1111 error reply says: FastAPI's ``detail`` or the web UI's ``error``/``errors``."""
    try:
        body = response.json()
    except ValueError:
        return describe(response.text, 120) if "json" in response.headers.get("content-type", "") else ""
    if not isinstance(body, dict):
        return describe(body, 160)
    detail = body.get("detail")
    if isinstance(detail, list):  # a validation error: [{"loc": [...], "msg": ...}, ...]
        detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
                           for d in detail if isinstance(d, dict))
    parts = [str(part) for part in (body.get("error"), detail, body.get("errors")) if part]
    return describe(": ".join(parts), 200)
