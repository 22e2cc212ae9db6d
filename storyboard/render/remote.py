"""What the remote renderers share: one panel at a time, each within a hard deadline, every request retried the
way the planner retries (`storyboard.retry`), and errors mapped the way the planner maps them (`storyboard.http`).

A remote renderer needs no torch and no weights: the story's final prompt, negative prompt, seed and size go to a
service, and the picture it sends back is cached and published like any other panel. Its identity names the
service and the model, not the address of the server: a local server's address changes (another port, another
machine on the network) while its pixels do not, and a remote service does not promise identical pixels over
time anyway, so a cached panel is kept until the story changes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from PIL import Image

from storyboard.errors import RendererRequestError, RendererUnavailable
from storyboard.render import Rendered, StepCallback
from storyboard.resolve import PanelJob
from storyboard.retry import Deadline, RetryPolicy, retrying

DEFAULT_TIMEOUT = 600.0  # seconds for one panel, all its requests, retries and pauses together
REQUEST_TIMEOUT = 60.0  # seconds for one quick request (submit, poll, download) within that


class RemoteRenderer:
    """A renderer that asks a service over HTTP to draw each panel. Subclasses implement `_draw`."""

    name: ClassVar[str]
    version: ClassVar[str]
    service: ClassVar[str]  # what is in the key: "dashscope", "a1111"
    reads_references: ClassVar[bool] = False  # none of these services takes a character's reference picture
    applies_loras: ClassVar[bool] = False  # nor a LoRA file from this machine

    def __init__(self, *, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 notify: Callable[[str], None] | None = None) -> None:
        if timeout <= 0:
            raise RendererRequestError(f"--timeout must be more than 0 seconds (got {timeout:g})")
        self.base_url = base_url
        self.timeout = timeout
        self.policy = RetryPolicy.from_env(retries)
        self.notify = notify or (lambda line: None)

    def prepare(self, jobs: Sequence[PanelJob]) -> None:
        """Nothing to fetch: the service holds the model."""

    def identity(self, job: PanelJob) -> dict[str, Any]:
        """The service and the model (also in ``job.params()``) and this renderer's version; no address, no key."""
        return {"renderer": self.name, "version": self.version, "service": self.service, "model": job.model}

    def render(self, jobs: Sequence[PanelJob], on_step: StepCallback | None = None,
               references: Mapping[str, Any] | None = None) -> Iterator[Rendered]:
        if not jobs:
            return
        self._prepare(jobs)
        for job in jobs:
            image, info = self._draw(job, Deadline(self.timeout))
            if on_step:
                on_step(job, 1, 1)
            yield Rendered(job, fitted(image, job, info), info)

    def _prepare(self, jobs: Sequence[PanelJob]) -> None:
        """Check what can be checked before the first panel (key, address, model), once per build."""

    def _draw(self, job: PanelJob, deadline: Deadline) -> tuple[Image.Image, dict[str, Any]]:
        raise NotImplementedError

    def _request(self, job: PanelJob, what: str, call: Callable[[float], Any], deadline: Deadline,
                 timeout: float | None = None) -> Any:
        """One request for `job`, retried on rate limits, server errors and timeouts, within the panel's deadline.

        `call` gets the seconds it may take; `what` names the request in errors ("did not answer <what>").
        """
        import requests

        def late(seconds: float) -> RendererUnavailable:
            return RendererUnavailable(f"{self._where()} did not answer {what} for {job.label} "
                                       f"within {seconds:.3g} s")

        def attempt(seconds: float) -> Any:
            try:
                return call(seconds)
            except requests.Timeout:
                raise late(seconds) from None

        return retrying(attempt, policy=self.policy, timeout=timeout or self.timeout, deadline=deadline, late=late,
                        notify=self.notify)

    def _where(self) -> str:
        return self.name


def fitted(image: Image.Image, job: PanelJob, info: dict[str, Any]) -> Image.Image:
    """`image` at the job's size; a picture of another size is resized, and its size is recorded in `info`."""
    if image.size == (job.width, job.height):
        return image
    info["size_returned"] = f"{image.width}x{image.height}"
    return image.resize((job.width, job.height), Image.Resampling.LANCZOS)


def open_image(data: bytes, where: str, job: PanelJob) -> Image.Image:
    """The picture in `data` as RGB, or one line saying the service sent something else."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise RendererRequestError(f"{where} sent something that is not an image for {job.label} "
                                   f"({len(data)} bytes)") from None
