"""Story -> list of PanelJob: everything a renderer needs, resolved once, in one pure function."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from storyboard.compose.layout import panel_size
from storyboard.errors import StoryError
from storyboard.story import Story


@dataclass(frozen=True)
class PanelJob:
    """One panel, fully resolved: the final prompt, negative prompt, seed, size and model.

    The manifest, the cache key and the renderer all read these same values.
    """

    index: int  # 1-based, as on the page
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
    characters: tuple[str, ...] = ()
    options: tuple[tuple[str, Any], ...] = field(default=())  # renderer settings, sorted (key, value) pairs
    # Settings that decide where and how a panel is drawn but not (beyond the renderer's identity) its pixels:
    # device, dtype, memory switches. Not part of params().
    runtime: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def file(self) -> str:
        return f"panels/panel-{self.index:02d}.png"

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
        return data


def join_prompt(*parts: str) -> str:
    """Join prompt fragments with ', ', skipping empty ones and stray separators at their ends."""
    cleaned = (part.strip().strip(",").strip() for part in parts)
    return ", ".join(part for part in cleaned if part)


def final_prompt(story: Story, panel_index: int) -> str:
    """`"{style.prefix}, {description of each listed character}, {panel prompt}"`, empty parts skipped."""
    panel = story.panels[panel_index - 1]
    descriptions = [story.characters[name].description for name in panel.characters]
    return join_prompt(story.style.prefix, *descriptions, panel.prompt)


def resolve(story: Story, *, model: str | None = None) -> list[PanelJob]:
    """Resolve every panel of `story` into a PanelJob. `model` overrides `render.model`.

    `render.width`/`height` size a one-column panel; a panel spanning columns is rendered wider, at its box's
    aspect ratio on the page.
    """
    render = story.render
    return [
        PanelJob(
            index=i,
            prompt=final_prompt(story, i),
            negative_prompt=join_prompt(story.style.negative),
            seed=panel.seed if panel.seed is not None else render.seed + i - 1,
            width=panel_size((render.width, render.height), panel.span, story.layout.gutter)[0],
            height=render.height,
            model=model or render.model,
            steps=render.steps,
            guidance=render.guidance,
            caption=panel.caption,
            scene=panel.prompt.strip(),
            characters=tuple(panel.characters),
            options=_options(story, panel.characters),
            runtime=tuple(sorted(render.runtime_options().items())),
        )
        for i, panel in enumerate(story.panels, start=1)
    ]


def _options(story: Story, characters: list[str]) -> tuple[tuple[str, Any], ...]:
    options = story.render.pixel_options()
    loras = story.render.loras_for([story.characters[name] for name in characters])
    if loras:  # absent, not empty, without LoRAs: a panel without one keeps the key it always had
        options["loras"] = loras
    return tuple(sorted(options.items()))


def check_panel_number(number: int, count: int, story_path: object = None) -> int:
    """`number` if the story has such a panel (1-based), else a `StoryError` saying which numbers exist."""
    if not 1 <= number <= count:
        choose = f"choose 1 to {count}" if count > 1 else "its only panel is 1"
        raise StoryError(f"there is no panel {number}; the story has {count} panel{'s' if count > 1 else ''} "
                         f"({choose})", file=story_path)
    return number


def content_key(params: dict[str, Any]) -> str:
    """A stable hash of JSON-serialisable values."""
    blob = json.dumps(params, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
