"""What a build is asked to do, as one value: the library's keyword arguments, gathered once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from storyboard.building.progress import BuildProgress
from storyboard.errors import StoryboardError
from storyboard.output import OutputFolder, default_out_dir
from storyboard.render import DEFAULT_RENDERER, Renderer, get_renderer, named_renderer
from storyboard.story import Story, load_story
from storyboard.story.edition import original_of
from storyboard.workers import LocalWorkers, Workers


@dataclass(frozen=True)
class Target:
    """Which story is built, and into which folder.

    `story` is the story to build (the file's contents unless the caller passes an in-memory one); `path` still
    places the default output folder and the files the story names relative to itself. `given_out` is the
    ``--out`` a user gave, when it is not the default folder (the PNGs' provenance records it).
    """

    path: str | Path  # as given: the manifest and the PNGs' provenance name it so
    story: Story
    out: OutputFolder
    given_out: str | None = None

    @property
    def folder(self) -> Path:
        """The story file's folder: the files the story names are relative to it (an edition's: its original's)."""
        original = original_of(self.story)
        return original.parent if original is not None else Path(self.path).parent

    def cache_dir(self, cache: str | Path | None) -> Path:
        """Where drawn images are kept: `cache` when given; for an edition built into its default folder, the
        original's default folder's cache (so it draws nothing the original's build drew); else ``<out>/cache``."""
        if cache is not None:
            return Path(cache)
        original = original_of(self.story)
        if original is not None and self.given_out is None:
            return OutputFolder.of(original).cache_dir
        return self.out.cache_dir

    @classmethod
    def of(cls, story_path: str | Path, out_dir: str | Path | None = None, story: Story | None = None) -> Target:
        story = story if story is not None else load_story(story_path)
        out = OutputFolder.of(story_path, out_dir)
        given = None if out_dir is None or Path(out_dir) == default_out_dir(story_path) else str(out_dir)
        return cls(story_path, story, out, given)


def readable_stories(story_paths: Iterable[str | Path]) -> list[Story]:
    """The stories at `story_paths` that can be read, for the renderer they name (`Drawing.engine`); one that
    cannot is left out, and the command or build that reads it reports why."""
    stories = []
    for path in story_paths:
        try:
            stories.append(load_story(path))
        except StoryboardError:
            continue
    return stories


@dataclass
class Drawing:
    """How images are drawn and kept: by which renderer (a name, or an instance the caller keeps warm; None for the
    one the story's `render.renderer` names, else the default), with which model (``--model``), where they are
    cached (default ``<out>/cache``; a shared folder is never pruned) and who hears about it."""

    renderer: str | Renderer | None = None
    model: str | None = None
    cache: str | Path | None = None
    progress: BuildProgress = field(default_factory=BuildProgress)

    def engine(self, stories: Iterable[Story] = ()) -> Renderer:
        """The renderer to draw `stories` with."""
        if self.renderer is not None and not isinstance(self.renderer, str):
            return self.renderer
        return get_renderer(self.renderer or named_renderer(stories) or DEFAULT_RENDERER)


@dataclass
class BuildOptions(Drawing):
    """A build's choices beyond `Drawing`: panels to redraw (1-based), `force` to redraw everything, an index.html
    with everything inlined, and where jobs are drawn (this process, or Ray)."""

    panels: Iterable[int] = ()
    force: bool = False
    self_contained: bool = False
    workers: Workers = field(default_factory=LocalWorkers)
