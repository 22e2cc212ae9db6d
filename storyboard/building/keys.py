"""Content keys: what decides an image's pixels, hashed. A build keys its jobs anchors first, so that a panel's key
can hold the keys of the anchors it reads."""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from storyboard.cache import PanelCache
from storyboard.errors import RenderError, StoryError
from storyboard.files import read_regular_file
from storyboard.render import Renderer
from storyboard.resolve import KeyedJob, PanelJob, anchored_characters, content_key
from storyboard.story import Story

log = logging.getLogger("storyboard")
MAX_PICTURE_BYTES = 50 * 1024 * 1024  # a character's own reference picture


def panel_key(job: PanelJob, renderer: str, identity: dict[str, Any], references: Sequence[str] = ()) -> str:
    """The content key of a panel or anchor: the sha256 of canonical JSON of everything that decides its pixels.

    That is ``job.params()`` (final prompt, negative prompt, seed, width, height, model as named, steps,
    guidance, renderer options such as the scheduler, and for a panel that reads anchors the consistency
    settings), the renderer's name, ``renderer.identity(job)``: what else decides the pixels for that renderer
    (its version, the model's identity such as the hub commit or the file's sha256, the scheduler and its config,
    dtype, device class), and `references`: the keys of the anchors the panel reads, in its `characters` order.
    Captions, titles, layout and the panel's position are not in it unless the renderer draws them (the draft
    renderer does), so editing them re-composes the page without redrawing anything. A panel that reads no
    anchor has exactly the key it had before anchors existed.
    """
    params = {**job.params(), "renderer": renderer, "identity": identity}
    if references:
        params["references"] = list(references)
    return content_key(params)


def picture_key(sha256: str, width: int, height: int) -> str:
    """The key of a character's own reference picture, fitted to the anchor size: its bytes and that size."""
    return content_key({"picture_sha256": sha256, "width": width, "height": height})


class Keying:
    """A build's jobs keyed in dependency order (anchors before the panels that read them).

    `previous` holds the renderer identities the last build of the folder recorded: see `_identity`.
    """

    def __init__(self, engine: Renderer, story_path: str | Path, cache: PanelCache,
                 previous: list[dict[str, Any]]) -> None:
        self.engine, self.story_path, self.cache, self.previous = engine, story_path, cache, previous
        self.keyed: dict[str, KeyedJob] = {}  # by job.file
        self.pictures: dict[str, Image.Image] = {}  # fitted reference pictures, by anchor key

    def key(self, job: PanelJob, must_draw: bool = False) -> KeyedJob:
        """Key `job` (its anchors must be keyed already). See `_identity` for `must_draw`."""
        if job.image:
            sha, picture = read_picture(job, self.story_path)
            key = picture_key(sha, job.width, job.height)
            self.pictures[key] = picture
            keyed = KeyedJob(job, key, {"picture": Path(job.image).name, "sha256": sha})
        else:
            references = {name: self.anchors()[name].key for name in job.references}
            identity = self._identity(job, list(references.values()), must_draw)
            keyed = KeyedJob(job, panel_key(job, self.engine.name, identity, list(references.values())), identity,
                             references)
        self.keyed[job.file] = keyed
        return keyed

    def anchors(self) -> dict[str, KeyedJob]:
        """The anchors keyed so far, by character name."""
        return {k.job.character: k for k in self.keyed.values() if k.job.is_anchor}

    def _identity(self, job: PanelJob, references: list[str], must_draw: bool) -> dict[str, Any]:
        """The renderer's identity for `job`.

        When the renderer cannot identify its model (the weights were moved away, the hub is unreachable) a job
        whose image the last build drew from the same job is still reused: nothing that decides its pixels could
        have changed without the model being there to draw them. A job that must be drawn raises the error.
        """
        try:
            return self.engine.identity(job)
        except RenderError:
            if must_draw:
                raise
            for identity in self.previous:
                if self.cache.has(panel_key(job, self.engine.name, identity, references)):
                    return identity
            raise


def read_picture(job: PanelJob, story_path: str | Path) -> tuple[str, Image.Image]:
    """A character's own reference picture: the sha256 of its bytes, and the picture fitted to the anchor size."""
    path = Path(job.image)
    shown = _shown_path(path, story_path)

    def refuse(problem: str) -> StoryError:
        return StoryError(f"cannot use {shown} as the reference picture of {job.character!r}: {problem}",
                          file=story_path, field=f"characters.{job.character}.image")

    try:
        data = read_regular_file(path, MAX_PICTURE_BYTES)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                picture = ImageOps.fit(ImageOps.exif_transpose(image).convert("RGB"), (job.width, job.height),
                                       Image.Resampling.LANCZOS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise refuse(f"it has more than {Image.MAX_IMAGE_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise refuse("not an image Pillow can read") from None
    return hashlib.sha256(data).hexdigest(), picture


def _shown_path(path: Path, story_path: str | Path) -> Path:
    """`path` as the user can find it: beside the story file's path when it lies below the story's folder."""
    try:
        return Path(story_path).parent / path.relative_to(Path(story_path).parent.resolve())
    except ValueError:
        return path


def as_drawn_by(engine: Renderer, story: Story, story_dir: str | Path = ".", *, say: bool = True) -> Story:
    """`story` as `engine` can draw it: a renderer that cannot read anchors (for this story: see
    `Renderer.anchors_unread`; files the story names are relative to `story_dir`) draws no anchor portraits, and
    its panels are keyed and drawn as with ``consistency: none``; one that cannot apply LoRAs draws and keys its
    panels without them. The build says so once (`say`)."""
    if not getattr(engine, "applies_loras", True) and (story.render.loras or any(
            c.lora for c in story.characters.values())):
        if say:
            log.warning("the %s renderer cannot apply LoRAs; render.loras and the characters' lora are not used",
                        engine.name)
        story = story.model_copy(update={
            "render": story.render.model_copy(update={"loras": []}),
            "characters": {name: c.model_copy(update={"lora": None}) for name, c in story.characters.items()}})
    unread = _anchors_unread(engine, story, story_dir)
    if not unread or story.render.consistency == "none" or not anchored_characters(story):
        return story
    if say:
        log.warning("%s; panels that list characters are drawn from their prompts alone (render.consistency: none)",
                    unread)
    return story.model_copy(update={"render": story.render.model_copy(update={"consistency": "none"})})


def _anchors_unread(engine: Renderer, story: Story, story_dir: str | Path) -> str:
    """Why `engine` draws the panels of `story` without their anchors; "" when it reads them."""
    unread = getattr(engine, "anchors_unread", None)
    if unread is not None:
        return unread(story, Path(story_dir))
    if getattr(engine, "reads_references", False):
        return ""
    return f"the {engine.name} renderer cannot read character anchors"


def distinct(keyed: list[KeyedJob]) -> list[KeyedJob]:
    """The first job of each key, in order."""
    seen: dict[str, KeyedJob] = {}
    for k in keyed:
        seen.setdefault(k.key, k)
    return list(seen.values())
