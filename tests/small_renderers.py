"""Small renderers for tests: they record what they draw, can be slowed down so a build can be killed midway,
and identify a model file by its hash, the way a real renderer does."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from storyboard.errors import ModelNotFound
from storyboard.render import Reference, Rendered, StepCallback
from storyboard.resolve import PanelJob


class SmallRenderer:
    """Draws a few coloured blocks chosen by the job's content.

    `log` (or $SMALL_RENDERER_LOG) gets one line per panel drawn, so a test can count draws in another
    process; `delay` (or $SMALL_RENDERER_DELAY) seconds are spent on each panel. A model file must
    exist: a `.safetensors` model is identified by its sha256, and its absence raises `ModelNotFound`.
    """

    name = "small"
    reads_references = True

    def __init__(self, log: str | None = None, delay: float | None = None) -> None:
        self.drawn: list[PanelJob] = []
        self.log = log or os.environ.get("SMALL_RENDERER_LOG")
        self.delay = float(delay if delay is not None else os.environ.get("SMALL_RENDERER_DELAY", "0"))

    def prepare(self, jobs: Sequence[PanelJob]) -> None:
        pass

    def identity(self, job: PanelJob) -> dict[str, Any]:
        identity = {"renderer": self.name, "version": "1", "sampler": "Small a", "dtype": "float32",
                    "device": "cpu"}
        if job.model.endswith(".safetensors"):
            path = Path(job.model)
            if not path.is_file():
                raise ModelNotFound(f"model file {job.model} not found")
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            identity.update(model_sha256=digest, model_hash=digest[:10])
        return identity

    def render(self, jobs: Sequence[PanelJob], on_step: StepCallback | None = None,
               references: Mapping[str, Reference] | None = None) -> Iterator[Rendered]:
        for job in jobs:
            self.identity(job)  # the model must be there to draw
            for step in range(1, job.steps + 1):  # the delay is spread over the steps, like a denoising loop
                if self.delay:
                    time.sleep(self.delay / job.steps)
                if on_step:
                    on_step(job, step, job.steps)
            image = draw(job, [references[name].image for name in job.references] if references else [])
            self.drawn.append(job)
            if self.log:
                with open(self.log, "a", encoding="utf-8") as f:
                    f.write(f"{job.character or job.index} {job.seed}\n")
            yield Rendered(job, image, {"small": True})


def draw(job: PanelJob, anchors: Sequence[Image.Image] = ()) -> Image.Image:
    digest = hashlib.sha256(repr(sorted(job.params().items())).encode()).digest()
    image = Image.new("RGB", (job.width, job.height), tuple(digest[:3]))
    paint = ImageDraw.Draw(image)
    for i in range(4):
        x, y = digest[3 + i] % job.width, digest[7 + i] % job.height
        paint.rectangle((x, y, x + job.width // 4, y + job.height // 4), fill=tuple(digest[11 + 3 * i:14 + 3 * i]))
    for i, anchor in enumerate(anchors):  # a strip of each anchor it reads, so its pixels depend on them
        strip = anchor.resize((job.width // 4, job.height // 4))
        image.paste(strip, (i * job.width // 4, job.height - job.height // 4))
    return image


class WatchedRenderer(SmallRenderer):
    """A `SmallRenderer` that writes ``<pid> <job>`` to `started` as it begins each job, so a test can kill the
    process drawing it."""

    def __init__(self, started: str, delay: float = 0.0, log: str | None = None) -> None:
        super().__init__(log=log, delay=delay)
        self.started = started

    def render(self, jobs: Sequence[PanelJob], on_step: StepCallback | None = None,
               references: Mapping[str, Reference] | None = None) -> Iterator[Rendered]:
        for job in jobs:
            with open(self.started, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {job.label}\n")
            yield from super().render([job], on_step, references)


class WaitingRenderer:
    """Draws nothing worth seeing: it only waits `delay` seconds per panel, to measure scheduling alone."""

    name = "waiting"
    reads_references = True

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def prepare(self, jobs: Sequence[PanelJob]) -> None:
        pass

    def identity(self, job: PanelJob) -> dict[str, Any]:
        return {"renderer": self.name, "delay": self.delay}

    def render(self, jobs: Sequence[PanelJob], on_step: StepCallback | None = None,
               references: Mapping[str, Reference] | None = None) -> Iterator[Rendered]:
        for job in jobs:
            time.sleep(self.delay)
            yield Rendered(job, Image.new("RGB", (job.width, job.height), (job.index % 256, 0, 0)))
