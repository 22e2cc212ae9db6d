"""Story -> list of PanelJob: everything a renderer needs, resolved once, in pure functions.

A job is a panel, or a character's anchor portrait that panels listing the character read. Panels name the anchors
they read in `PanelJob.references`; the build draws anchors first and puts their keys into the keys of the panels
that read them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from storyboard.errors import StoryError
from storyboard.geometry import panel_size
from storyboard.output import character_file, panel_file
from storyboard.story import MAX_SEED, Story
from storyboard.story.film import framing


@dataclass(frozen=True)
class PanelJob:
    """One panel or anchor, fully resolved: the final prompt, negative prompt, seed, size and model.

    The manifest, the cache key and the renderer all read these same values.
    """

    index: int  # 1-based, as on the page; 0 for an anchor
    prompt: str  # final prompt: style prefix, character descriptions, panel prompt
    negative_prompt: str
    seed: int
    width: int
    height: int
    model: str
    steps: int
    guidance: float
    caption: str = ""
    scene: str = ""  # the panel's own prompt, before the style prefix and character descriptions
    framing: str = ""  # the words its shot put into the prompt (film panels; see `storyboard.story.film.framing`)
    characters: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = field(default=())  # renderer settings, sorted (key, value) pairs
    # Settings that decide where and how a panel is drawn but not (beyond the renderer's identity) its pixels:
    # device, dtype, memory switches. Not part of params().
    runtime: tuple[tuple[str, Any], ...] = field(default=())
    # The characters whose anchors this panel reads (empty for anchors, and with consistency: none).
    references: tuple[str, ...] = ()
    # For an anchor: the character's name, its file name under characters/, and the user's own picture, if any
    # (an absolute path), which replaces the drawn portrait.
    character: str = ""
    slug: str = ""
    image: str = ""
    # The graph file a graph-driven renderer (comfyui) draws the job with, as an absolute path: `render.workflow`
    # for a panel, `render.anchor_workflow` for an anchor; "" when the story names none. Not part of params(): the
    # renderer's identity holds the graph itself, so moving the file changes no key and editing it does.
    workflow: str = ""

    @property
    def is_anchor(self) -> bool:
        return bool(self.character)

    @property
    def file(self) -> str:
        """Where the job's image is published in the build folder (`storyboard.output` names it)."""
        return character_file(self.slug) if self.is_anchor else panel_file(self.index)

    @property
    def label(self) -> str:
        """How progress lines and errors name the job: 'panel 3', or 'little prince' (anchor)."""
        return f"{self.character} (anchor)" if self.is_anchor else f"panel {self.index}"

    def params(self) -> dict[str, Any]:
        """The values that decide the panel's pixels (before the renderer's own identity is added)."""
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "steps": self.steps,
            "guidance": self.guidance,
            "options": dict(self.options),
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["characters"] = list(self.characters)
        data["options"] = dict(self.options)
        data["runtime"] = dict(self.runtime)
        data["references"] = list(self.references)
        for name in ("character", "slug", "image", "framing", "workflow"):  # a panel's record stays as it was
            if not data[name]:
                del data[name]
        if not data["references"]:
            del data["references"]
        return data


@dataclass(frozen=True)
class KeyedJob:
    """A job with its content key: what a build asks workers to draw, and what it publishes.

    `identity` is what the renderer said decides its pixels beyond ``job.params()``; `references` holds the keys
    of the anchors the job reads, by character name (they are part of `key`).
    """

    job: PanelJob
    key: str
    identity: Mapping[str, Any] = field(default_factory=dict)
    references: Mapping[str, str] = field(default_factory=dict)


def join_prompt(*parts: str) -> str:
    """Join prompt fragments with ', ', skipping empty ones and stray separators at their ends."""
    cleaned = (part.strip().strip(",").strip() for part in parts)
    return ", ".join(part for part in cleaned if part)


def final_prompt(story: Story, panel_index: int, model: str | None = None) -> str:
    """`"{style.prefix}, {shot framing}, {description of each listed character}, {panel prompt}"`, empty parts
    skipped. The framing words of a panel's `shot` are worded for `model` (default `render.model`): tags for CLIP
    models, a sentence for T5 ones (see `storyboard.story.film.framing`)."""
    panel = story.panels[panel_index - 1]
    descriptions = [story.characters[name].description for name in panel.characters]
    shot = framing(panel.shot, model or story.render.model)
    return join_prompt(story.style.prefix, shot, *descriptions, panel.prompt)


def anchor_seed(story: Story, name: str) -> int:
    """A character's anchor seed: its own `seed`, else `render.seed` plus the first four bytes of the sha256 of its
    name (big-endian), so that adding, removing or reordering characters never changes another's anchor."""
    own = story.characters[name].seed
    if own is not None:
        return own
    offset = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "big")
    return (story.render.seed + offset) % (MAX_SEED + 1)


def anchored_characters(story: Story) -> list[str]:
    """The characters that get an anchor: those at least one panel lists, in the order they are defined."""
    listed = {name for panel in story.panels for name in panel.characters}
    return [name for name in story.characters if name in listed]


def file_slug(name: str, taken: set[str]) -> str:
    """A file-safe name for `name` (letters of any script, digits, '-'), unique among `taken`."""
    base = re.sub(r"[^\w]+", "-", name.lower(), flags=re.UNICODE).strip("-_") or "character"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def resolve_jobs(story: Story, *, model: str | None = None, story_dir: str | Path = ".") -> list[PanelJob]:
    """Everything a build draws: an anchor per character that a panel lists (see `resolve_anchors`), then every
    panel (see `resolve`)."""
    return resolve_anchors(story, model=model, story_dir=story_dir) + resolve(story, model=model,
                                                                              story_dir=story_dir)


def resolve_anchors(story: Story, *, model: str | None = None, story_dir: str | Path = ".") -> list[PanelJob]:
    """The anchor portrait of each character a panel lists, unless `render.consistency` is none.

    An anchor is drawn at `render.width`×`height` from the style prefix, the description and the character's
    `anchor` framing, with `anchor_seed`. A character's `image` (resolved against `story_dir`, the story file's
    folder) replaces the drawn portrait; `render.anchor_workflow` is the graph a comfyui renderer draws it with.
    """
    render = story.render
    if render.consistency == "none":
        return []
    taken: set[str] = set()
    jobs = []
    for name in anchored_characters(story):
        character = story.characters[name]
        jobs.append(PanelJob(
            index=0,
            prompt=join_prompt(story.style.prefix, character.description, character.anchor),
            negative_prompt=join_prompt(story.style.negative),
            seed=anchor_seed(story, name),
            width=render.width,
            height=render.height,
            model=model or render.model,
            steps=render.steps,
            guidance=render.guidance,
            scene=character.anchor.strip(),
            options=tuple(sorted((render.pixel_options() | _loras(story, [name])).items())),
            runtime=tuple(sorted(render.runtime_options().items())),
            character=name,
            slug=file_slug(name, taken),
            image=story_file(story_dir, character.image),
            workflow=story_file(story_dir, render.anchor_workflow),
        ))
    return jobs


def resolve(story: Story, *, model: str | None = None, story_dir: str | Path = ".") -> list[PanelJob]:
    """Resolve every panel of `story` into a PanelJob. `model` overrides `render.model`; `render.workflow` is
    resolved against `story_dir`, the story file's folder.

    `render.width`/`height` size a one-column panel; a panel spanning columns is rendered wider, at its box's
    aspect ratio on the page. A panel reads the anchors of the characters it lists (`references`) unless
    `render.consistency` is none; then, and for panels that list no character, nothing about it depends on anchors.
    """
    render = story.render
    jobs = []
    for i, panel in enumerate(story.panels, start=1):
        references = tuple(panel.characters) if render.consistency != "none" else ()
        options = render.pixel_options() | (render.consistency_options() if references else {})
        options |= _loras(story, panel.characters)
        jobs.append(PanelJob(
            index=i,
            prompt=final_prompt(story, i, model),
            negative_prompt=join_prompt(story.style.negative),
            seed=panel.seed if panel.seed is not None else render.seed + i - 1,
            width=panel_size((render.width, render.height), panel.span, story.layout.gutter)[0],
            height=render.height,
            model=model or render.model,
            steps=render.steps,
            guidance=render.guidance,
            caption=panel.caption,
            scene=panel.prompt.strip(),
            framing=framing(panel.shot, model or render.model),
            characters=tuple(panel.characters),
            options=tuple(sorted(options.items())),
            runtime=tuple(sorted(render.runtime_options().items())),
            references=references,
            workflow=story_file(story_dir, render.workflow),
        ))
    return jobs


def story_file(story_dir: str | Path, name: str | None) -> str:
    """A file the story names (relative to its folder) as an absolute path, links resolved; "" for none."""
    if not name:
        return ""
    try:  # realpath, unlike Path.resolve, does not raise on a loop of links: reading the file reports it
        return os.path.realpath(Path(story_dir) / name)
    except ValueError:  # a NUL in the name, which reading the file reports too
        return os.path.abspath(Path(story_dir) / name)


def _loras(story: Story, characters: list[str]) -> dict[str, Any]:
    """`{"loras": [...]}` for a job showing `characters`, or nothing: a job without a LoRA keeps the key it
    always had."""
    loras = story.render.loras_for([story.characters[name] for name in characters])
    return {"loras": loras} if loras else {}


def check_panel_number(number: int, count: int, story_path: object = None) -> int:
    """`number` if the story has such a panel (1-based), else a `StoryError` saying which numbers exist."""
    if not 1 <= number <= count:
        choose = f"choose 1 to {count}" if count > 1 else "its only panel is 1"
        raise StoryError(f"there is no panel {number}; the story has {count} panel{'s' if count > 1 else ''} "
                         f"({choose})", file=story_path)
    return number


def content_key(params: dict[str, Any]) -> str:
    """A stable hash of JSON values (dicts, lists, strings, numbers, booleans, None).

    Anything else raises TypeError: hashing a `repr` would tie every key to how some object happens to print.
    """
    blob = json.dumps(params, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
