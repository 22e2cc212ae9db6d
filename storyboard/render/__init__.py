"""Renderers turn PanelJobs into images. Each lives in its own module behind the `Renderer` protocol.

Adding one is a new module plus one line in `RENDERERS`; modules are imported only when chosen, so heavy
dependencies (torch, diffusers) load only for builds that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from storyboard.errors import OptionError
from storyboard.registry import load_registered
from storyboard.resolve import PanelJob
from storyboard.story import Story

#: Called as ``on_step(job, step, total_steps)`` while a panel is being drawn.
StepCallback = Callable[[PanelJob, int, int], None]

RENDERERS: dict[str, str] = {
    "diffusers": "storyboard.render.diffusers:DiffusersRenderer",
    "draft": "storyboard.render.draft:DraftRenderer",
    "dashscope": "storyboard.render.dashscope:DashScopeRenderer",
    "a1111": "storyboard.render.a1111:A1111Renderer",
    "comfyui": "storyboard.render.comfyui:ComfyUIRenderer",
    "openvino": "storyboard.render.openvino:OpenVinoRenderer",
}
DEFAULT_RENDERER = "diffusers"


@dataclass
class Rendered:
    """A drawn panel, with anything the renderer learned while drawing it (e.g. a safety-checker flag)."""

    job: PanelJob
    image: Image.Image
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reference:
    """A character's anchor as panels read it: the anchor's job (prompt, seed...), its image and its content key
    (a name for the picture that changes whenever its pixels may: a remote renderer uploads it under that name)."""

    job: PanelJob
    image: Image.Image
    key: str = ""


class Renderer(Protocol):
    name: str
    #: Whether `render` uses the anchors of panels that list characters (`PanelJob.references`). A renderer that
    #: cannot draws those panels from their prompts alone, and the build says so once.
    reads_references: bool
    #: Optional, True when absent: whether `render` applies the LoRAs of `job.options["loras"]`. A renderer that
    #: cannot (a remote service) draws without them, and the build says so once.
    applies_loras: bool
    #: Optional, 0 when absent: a strip at the top of each image (a share of its height) that the renderer draws its
    #: own marks on (the draft card's header); the page keeps speech bubbles and narration off it.
    page_header: float
    #: Optional, True when absent: whether the images come from `job.model`, so that the page's footer names it.
    names_model: bool

    # Optional: ``anchors_unread(story, story_dir) -> str``, for a renderer whose reading of anchors depends on the
    # story (the comfyui renderer's graph): "" when panels of `story` read their anchors, else why not (the build
    # says it once, and draws them as with ``consistency: none``). It may raise for files the story names that it
    # cannot use. Without it, `reads_references` decides.

    def prepare(self, jobs: Sequence[PanelJob]) -> None:
        """Make local what drawing these jobs needs (e.g. download a hub model); called once by the build, after it
        resolves its jobs and before it keys them, so that `identity` finds everything on disk.

        A renderer with nothing to fetch does nothing. What cannot be fetched raises nothing here: `identity` (and
        `render`) raise it for the jobs that need it, so that the build can still reuse the images it drew before
        for unchanged panels.
        """

    def identity(self, job: PanelJob) -> dict[str, Any]:
        """What, beyond ``job.params()``, decides this renderer's pixels (its version, settings...).

        It goes into the panel's content key (see `storyboard.building.panel_key`), so it must be cheap and must not
        load the model, import torch or touch the network (`prepare` did any fetching): a rebuild with nothing to
        draw calls it for every panel. JSON values only. Optional keys that provenance reads: ``"sampler"`` (an
        A1111-style name such as ``"Euler a"``) and ``"model_hash"`` (A1111's short hash). When the model cannot be
        identified (its folder was moved away, it is not in the cache and could not be fetched) raise `RenderError`
        (e.g. `ModelNotFound`) rather than guess: the build then reuses the images the last build drew for
        unchanged panels.
        """

    def render(self, jobs: Sequence[PanelJob], on_step: StepCallback | None = None,
               references: Mapping[str, Reference] | None = None) -> Iterator[Rendered]:
        """Draw `jobs` in order, yielding each panel as soon as it is done. Load models once, lazily.

        `references` holds, by character name, the anchor of every name in the jobs' `references`.
        """


def renderer_class(name: str) -> type[Renderer]:
    """The class registered as `name`, imported only now."""
    return load_registered(RENDERERS, name, "renderer", OptionError)


def named_renderer(stories: Iterable[Story]) -> str | None:
    """The renderer the stories' `render.renderer` names, for a build whose caller names none; None when none of
    them names one. Stories that name different ones are an `OptionError`: one build draws with one renderer."""
    named = sorted({story.render.renderer for story in stories if story.render.renderer})
    if len(named) > 1:
        raise OptionError(f"the stories name different renderers in render.renderer ({', '.join(named)}); "
                          "choose one with --renderer")
    return named[0] if named else None


def renderer_options(name: str) -> set[str]:
    """The keyword options the renderer registered as `name` takes (e.g. ``base_url``, ``timeout``)."""
    import inspect

    parameters = inspect.signature(renderer_class(name)).parameters.values()
    return {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def get_renderer(name: str, **options: Any) -> Renderer:
    """Instantiate the renderer registered as `name` with `options`; one it does not take is an error."""
    cls = renderer_class(name)
    unknown = sorted(set(options) - renderer_options(name))
    if unknown:
        flags = ", ".join("--" + option.replace("_", "-") for option in unknown)
        raise OptionError(f"the {name} renderer does not take {flags}")
    return cls(**options)
