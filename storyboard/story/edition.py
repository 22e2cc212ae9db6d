"""Editions: a story told again in another language, by a file that holds its text only.

::

    edition_of: little_prince.yaml      # the story it translates, relative to this file
    language: en
    title: The Little Prince
    glossary: {小王子: The Little Prince, 狐狸: the fox}   # names and recurring terms, translated once
    panels:                              # by position: caption, narration, dialogue (speakers translated too)
      - caption: "The pilot crash-lands in the Sahara ..."
        dialogue: [{speaker: pilot, text: "..."}]
        source: 3f2a…                    # what the original panel said when it was translated
        locked: true                     # kept as you edited it when `translate` runs again

Everything else (prompts, seeds, characters, layout, render) comes from the original, so the edition's panels have
the original's keys: building it draws nothing the original's build drew.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr

from storyboard.errors import StoryError
from storyboard.story.models import MAX_BUBBLE, MAX_NAME, MAX_TEXT, MAX_TITLE, Line, PlannedBy, Story, StoryModel

TEXT_FIELDS = ("caption", "narration", "dialogue", "chapter", "source", "locked")


class EditionLine(StoryModel):
    speaker: str = Field("", max_length=MAX_NAME)
    text: str = Field(max_length=MAX_BUBBLE)


class EditionPanel(StoryModel):
    caption: str = Field("", max_length=MAX_TEXT)
    narration: str = Field("", max_length=MAX_TEXT)
    dialogue: list[EditionLine] = Field(default_factory=list)
    chapter: str = Field("", max_length=MAX_TITLE)
    source: str = Field("", max_length=64, description="The original panel's text when it was translated.")
    locked: bool = Field(False, description="`storyboard translate` keeps a locked panel exactly as written.")


class Edition(StoryModel):
    edition_of: str = Field(min_length=1, description="The story this edition translates, relative to this file.")
    language: str = Field(max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    glossary: dict[str, str] = Field(default_factory=dict, description="Names and terms, translated once.")
    translated_by: PlannedBy | None = None
    panels: list[EditionPanel] = Field(default_factory=list)


class EditionStory(Story):
    """A story built from an edition: the original's story with the edition's text; `original` is the original's
    file, and `glossary` the edition's names."""

    _original: Path | None = PrivateAttr(None)
    _glossary: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def original(self) -> Path | None:
        return self._original

    @property
    def glossary(self) -> dict[str, str]:
        return self._glossary


def original_of(story: Story) -> Path | None:
    """The original's file, for a story read from an edition; None for any other story."""
    return story.original if isinstance(story, EditionStory) else None


def display_name(story: Story, name: str) -> str:
    """How the page names character `name`: in an edition, as its glossary translates it."""
    return story.glossary.get(name, name) if isinstance(story, EditionStory) else name


def panel_source(panel: Any) -> str:
    """A short hash of what a panel of the original says (caption, narration, dialogue, chapter): an edition keeps
    it, so that `translate` knows which panels changed since."""
    said = {"caption": panel.caption, "narration": panel.narration, "chapter": panel.chapter,
            "dialogue": [[line.speaker, line.text] for line in panel.dialogue]}
    return hashlib.sha256(json.dumps(said, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]


def is_edition(data: Any) -> bool:
    return isinstance(data, dict) and "edition_of" in data


def text_only_problem(data: dict[str, Any]) -> tuple[str, tuple[str | int, ...]] | None:
    """The first field an edition may not hold (it holds text only), with its path."""
    for key in data:
        if key not in Edition.model_fields:
            return (f"an edition holds text only (title, language, glossary, panels' caption, narration and "
                    f"dialogue); {key} comes from the story it translates", (key,))
    panels = data.get("panels")
    for i, panel in enumerate(panels if isinstance(panels, list) else []):
        for key in panel if isinstance(panel, dict) else ():
            if key not in EditionPanel.model_fields:
                return (f"an edition holds text only (caption, narration, dialogue); {key} comes from the story it "
                        "translates", ("panels", i, key))
    return None


def apply_edition(original: Story, edition: Edition, original_path: Path, file: str | Path | None) -> EditionStory:
    """The original story told in the edition's language: its text replaced by the edition's, panel by panel."""
    have, need = len(edition.panels), len(original.panels)
    if have != need:
        if have < need:
            todo = f"add panel{'s' if need - have > 1 else ''} {_numbers(have + 1, need)}"
        else:
            todo = f"remove panel{'s' if have - need > 1 else ''} {_numbers(need + 1, have)}"
        raise StoryError(f"the edition has {have} panels and {original_path.name} has {need}: {todo} "
                         "(`storyboard translate` fills what is missing)", file=file, field="panels")
    panels = []
    for n, (panel, text) in enumerate(zip(original.panels, edition.panels)):
        if len(text.dialogue) != len(panel.dialogue):
            raise StoryError(f"{len(text.dialogue)} line(s), and panel {n + 1} of "
                             f"{original_path.name} has {len(panel.dialogue)}", file=file,
                             field=f"panels[{n}].dialogue")
        dialogue = [Line(speaker=line.speaker, text=line.text) for line in text.dialogue]
        panels.append(panel.model_copy(update={"caption": text.caption, "narration": text.narration,
                                               "dialogue": dialogue, "chapter": text.chapter or panel.chapter}))
    data = original.model_dump(exclude={"panels", "title", "language"})
    story = EditionStory.model_construct(**data, title=edition.title, language=edition.language, panels=panels)
    for name in ("style", "render", "layout", "animatic", "planned_by"):
        object.__setattr__(story, name, getattr(original, name))  # the original's own objects, as validated
    object.__setattr__(story, "characters", original.characters)
    story._original, story._glossary = original_path, dict(edition.glossary)
    return story


def _numbers(first: int, last: int) -> str:
    return str(first) if first == last else f"{first} to {last}"


def editions_of(story_path: str | Path) -> list[tuple[str, Path]]:
    """The editions beside a story file (`<stem>.<language>.yaml` naming it in `edition_of`), as (language, path);
    for an edition, its original's (the original first, under its own language)."""
    from storyboard.story.reader import parse_yaml, read_text

    path = Path(story_path)
    try:
        data = parse_yaml(read_text(path), path)
    except StoryError:
        return []
    if is_edition(data):
        original = path.parent / str(data.get("edition_of"))
        return [(lang, p) for lang, p in editions_of(original)] if original.is_file() else []
    found = []
    for other in sorted(path.parent.glob(f"{path.stem}.*{path.suffix}")):
        try:
            data = parse_yaml(read_text(other), other)
        except StoryError:
            continue
        if is_edition(data) and (other.parent / str(data["edition_of"])).resolve() == path.resolve() \
                and isinstance(data.get("language"), str):
            found.append((data["language"], other))
    if not found:
        return []
    try:
        language = parse_yaml(read_text(path), path).get("language", "en")
    except (StoryError, AttributeError):
        language = "en"
    return [(str(language), path), *found]
