"""A Fountain screenplay read into scenes: headings, action, and every line of dialogue with its speaker.

The parsing is screenplain's (scene headings, forced `.HEADINGS`, action, character cues with `@` and extensions,
parentheticals, dual dialogue `^`, transitions, centred text, sections, synopses, page breaks, the title page,
boneyard `/* */`). What a parser forgives but a writer would want to hear about is checked first, with the line:
a file that is not UTF-8, a boneyard or a note left open, a script with no scene heading and no dialogue. Notes
(`[[...]]`) are for the crew: they become the notes of their scene.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from storyboard.errors import StoryError
from storyboard.files import read_regular_file

MAX_SCRIPT_BYTES = 2_000_000
EXTENSION = re.compile(r"\s*\([^()]*\)\s*$")  # a cue's (V.O.), (O.S.), (CONT'D)...
NOTE = re.compile(r"\[\[(.*?)\]\]", re.S)


@dataclass(frozen=True)
class Said:
    """One line of dialogue: who says it (their name without extensions), what (verbatim), and how."""

    speaker: str
    text: str
    parenthetical: str = ""


@dataclass
class Scene:
    heading: str
    action: list[str] = field(default_factory=list)
    lines: list[Said] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    transition: str = ""


@dataclass
class Script:
    title: str
    scenes: list[Scene]

    @property
    def speakers(self) -> list[str]:
        """Everyone who speaks, in order of first line."""
        seen: dict[str, None] = {}
        for scene in self.scenes:
            for line in scene.lines:
                seen.setdefault(line.speaker, None)
        return list(seen)


def read_script(path: str | Path) -> Script:
    """The screenplay at `path`, or `StoryError` naming the file and line of what is wrong with it."""
    from storyboard.story.reader import decode

    path = Path(path)
    try:
        data = read_regular_file(path, MAX_SCRIPT_BYTES)
    except ValueError as exc:
        raise StoryError(str(exc), file=path) from None
    text = decode(data, path).replace("\r\n", "\n").replace("\r", "\n")
    _check_closed(text, path)
    notes = _notes_by_line(text)
    script = _parse(NOTE.sub("", text), notes, text)
    if not script.scenes or not any(s.lines for s in script.scenes) and all(not s.heading for s in script.scenes):
        raise StoryError("holds no scene heading and no dialogue; is it a Fountain screenplay?", file=path)
    return script


def _check_closed(text: str, path: Path) -> None:
    """A boneyard `/*` or a note `[[` that is never closed swallows the rest of the script: say where it opens."""
    for opener, closer, what in (("/*", "*/", "a boneyard (/* ... */)"), ("[[", "]]", "a note ([[ ... ]])")):
        at = 0
        while (start := text.find(opener, at)) >= 0:
            end = text.find(closer, start + 2)
            if end < 0:
                line = text.count("\n", 0, start) + 1
                raise StoryError(f"{what} opens here and is never closed", file=path, line=line)
            at = end + 2


def _notes_by_line(text: str) -> list[tuple[int, str]]:
    """Each note outside the boneyard, with its line: one pass over the text, however many notes it holds."""
    boneyards = [(m.start(), m.end()) for m in re.finditer(r"/\*.*?\*/", text, re.S)]
    notes, line, at, bone = [], 1, 0, 0
    for match in NOTE.finditer(text):
        line += text.count("\n", at, match.start())
        at = match.start()
        while bone < len(boneyards) and boneyards[bone][1] <= at:
            bone += 1
        if bone < len(boneyards) and boneyards[bone][0] <= at:
            continue  # inside a boneyard: cut, like everything there
        notes.append((line, " ".join(match.group(1).split())))
    return notes


def _name(cue: str) -> str:
    """A character cue as a name: without `@`, `^` and extensions such as (V.O.) or (CONT'D)."""
    name = cue.strip().lstrip("@").rstrip("^").strip()
    while True:
        stripped = EXTENSION.sub("", name).strip()
        if stripped == name:
            return name
        name = stripped


def _parse(text: str, notes: list[tuple[int, str]], original: str) -> Script:
    from screenplain.parsers import fountain
    from screenplain.types import Action, Dialog, DualDialog, Slug, Transition

    screenplay = fountain.parse(io.StringIO(text))
    title = " ".join(str(part) for part in screenplay.title_page.get("Title", []))
    title = " ".join(re.sub(r"(\*{1,3}|_)(\S(?:.*?\S)?)\1", r"\2", title).split())  # *emphasis*, _underline_
    scenes: list[Scene] = []

    def current() -> Scene:
        if not scenes:
            scenes.append(Scene(""))
        return scenes[-1]

    def dialogue(dialog: Dialog) -> None:
        how = ""
        for parenthetical, said in dialog.blocks:
            words = " ".join(str(said).split())
            if parenthetical:
                how = words
            elif words:
                current().lines.append(Said(_name(str(dialog.character)), words, how))
                how = ""

    for paragraph in screenplay.paragraphs:
        if isinstance(paragraph, Slug):
            scenes.append(Scene(" ".join(str(paragraph.line).split())))
        elif isinstance(paragraph, Action):
            words = " ".join(" ".join(str(line).lstrip("~").split()) for line in paragraph.lines).strip()
            if words:
                current().action.append(words)
        elif isinstance(paragraph, DualDialog):
            dialogue(paragraph.left)
            dialogue(paragraph.right)
        elif isinstance(paragraph, Dialog):
            dialogue(paragraph)
        elif isinstance(paragraph, Transition):
            current().transition = " ".join(str(paragraph.line).split())
    # Each note goes to the scene whose heading comes before it in the file: the headings' lines, found in order.
    starts, at = [], 0
    for n, scene in enumerate(scenes):
        found = original.find(scene.heading, at) if scene.heading else -1
        if found >= 0:
            starts.append((original.count("\n", 0, found) + 1 if not starts else
                           starts[-1][0] + original.count("\n", at, found), n))
            at = found
    owner, next_start = 0, 0
    for line, note in notes:
        while next_start < len(starts) and starts[next_start][0] <= line:
            owner = starts[next_start][1]
            next_start += 1
        if scenes and note:
            scenes[owner].notes.append(note)
    return Script(title, scenes)
