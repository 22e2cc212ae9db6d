"""Property-based: whatever a story file holds, reading it gives a Story or one `StoryError` line, quickly.

The stories in the repository are mutated (characters inserted, deleted and replaced, lines duplicated and cut,
YAML's own syntax and control characters thrown in), and small stories are generated from arbitrary values. The
examples are derived from a fixed seed, so a failure here fails the same way on every machine.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from storyboard.errors import StoryError
from storyboard.story import Story, story_from_yaml

ROOT = Path(__file__).resolve().parent.parent
STORIES = [path.read_text(encoding="utf-8") for path in sorted((ROOT / "stories").glob("*.yaml"))]
SPECIAL = ["&a ", "*a", "<<: *a", "!!python/object:os.system", "{", "}", "[", "]", ": ", "- ", "? ", "|", ">",
           "\t", "\n", "\r\n", "\x00", "\x1b[2J", "\u2028", "\ufeff", "'", '"', "#", "%YAML 1.1\n", "---\n", "...\n",
           "panels: ", "title: ", "characters: ", "seed: -1", "span: 99", "9" * 400, "🦊", "小王子"]
FAST = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SECONDS = 2.0  # for one file, however hostile


def read(text: str) -> None:
    started = time.monotonic()
    try:
        story = story_from_yaml(text, file="story.yaml")
    except StoryError as exc:
        line = str(exc)
        assert line.splitlines() == [line] and len(line) <= 1100, line[:300]
    else:
        assert isinstance(story, Story)
    assert time.monotonic() - started < SECONDS


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(STORIES))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        piece = draw(st.one_of(st.sampled_from(SPECIAL), st.text(max_size=12)))
        if how == "insert":
            text = text[:at] + piece + text[at:]
        elif how == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)):]
        elif how == "replace":
            text = text[:at] + piece + text[at + len(piece):]
        else:
            lines = text.splitlines(keepends=True)
            n = draw(st.integers(0, max(0, len(lines) - 1)))
            text = "".join(lines[: n + 1] + lines[n:])
    return text


values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)


@st.composite
def generated(draw: st.DrawFn) -> str:
    story = {"title": draw(st.text(max_size=20)), "panels": draw(st.lists(
        st.fixed_dictionaries({"prompt": st.text(max_size=20)}, optional={
            "caption": values, "seed": values, "span": values, "characters": values, "dialogue": values}),
        max_size=3))}
    for key in draw(st.lists(st.sampled_from(["render", "layout", "characters", "style", "language", "extra"]),
                             max_size=3, unique=True)):
        story[key] = draw(values)
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(story, out)
    return out.getvalue()


@FAST
@given(mutated())
def test_a_mutated_story_reads_or_is_one_line(text):
    read(text)


@FAST
@given(generated())
def test_a_generated_story_reads_or_is_one_line(text):
    read(text)
