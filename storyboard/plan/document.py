"""Writing a plan into the story's round-trip YAML document, changing only what the plan is about.

Locked panels keep their node untouched (so they come out byte for byte). An unlocked panel that already exists is
updated in place: its prompt, caption and characters change, its other fields (a pinned `seed`), comments and
quoting style stay. New top-level sections go where a person would put them, and comments that sat between two
sections stay in front of the section they introduced.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import ScalarString
from ruamel.yaml.tokens import CommentToken

from storyboard.http import redact
from storyboard.plan.reply import FilmPanelPlan, Plan
from storyboard.story import Render, Story

# The order of a story file's sections, as in stories/little_prince.yaml.
FIRST_RENDER_FIELDS = ("model", "width", "height", "steps", "guidance", "seed", "scheduler")
SECTION_ORDER = ("title", "language", "outline", "style", "characters", "render", "layout", "planned_by", "panels")
PANEL_ORDER = ("prompt", "caption", "characters")
FILM_ORDER = ("scene", "shot", "duration", "prompt", "caption", "characters", "action")


def apply_plan(document: CommentedMap, story: Story, plan: Plan, *, provider: str, model: str) -> list[str]:
    """Write `plan` into `document` (the file `story` was read from); return the sections that were added."""
    added = []
    if plan.style is not None and not story.style.prefix.strip():
        style = document.get("style")
        if isinstance(style, CommentedMap) and len(style):
            _put(style, "prefix", redact(plan.style.prefix), ("prefix", "negative"))
            if not story.style.negative.strip() and plan.style.negative:
                _put(style, "negative", redact(plan.style.negative), ("prefix", "negative"))
        else:
            _set_section(document, "style", CommentedMap(
                [("prefix", redact(plan.style.prefix)), ("negative", redact(plan.style.negative))]))
        added.append("style")
    if plan.characters and not story.characters:
        sheet = CommentedMap((redact(name), redact(text)) for name, text in plan.characters.items())
        _set_section(document, "characters", sheet)
        added.append("characters")
    if not story.panels and "render" not in document:
        # Visible defaults invite editing: the model, size, steps, seed and sampler a first build will use.
        defaults = Render().model_dump()
        _insert_section(document, "render", CommentedMap((key, defaults[key]) for key in FIRST_RENDER_FIELDS))
        added.append("render")

    by = CommentedMap([("provider", provider), ("model", model)])
    by.fa.set_flow_style()
    _set_section(document, "planned_by", by)

    panels = document.get("panels")
    if isinstance(panels, CommentedSeq) and len(panels):
        # The comment after the last panel (often the end of the file) stays at the end of the list.
        following = _detach_following(_end_slot(panels, len(panels) - 1))
        _write_panels(panels, story, plan)
        _attach_following(_end_slot(panels, len(panels) - 1), following)
    else:  # no panels yet (`panels:`, `panels: []` or no key): a new block list, filled before it is placed
        panels = CommentedSeq()
        _write_panels(panels, story, plan)
        _set_section(document, "panels", panels)
    return added


def _set_section(document: CommentedMap, key: str, value: Any) -> None:
    """Replace a section's value where it stands (an empty `characters: {}`, a bare `panels:`), or insert it."""
    if key in document:
        document[key] = value
    else:
        _insert_section(document, key, value)


def _write_panels(panels: CommentedSeq, story: Story, plan: Plan) -> None:
    count = len(plan.panels)
    while len(panels) > count:
        del panels[-1]
    for i, planned in enumerate(plan.panels):
        values = {
            "prompt": redact(planned.prompt),
            "caption": redact(planned.caption),
            "characters": [redact(name) for name in planned.characters],
        }
        following = ""
        if i < len(panels):
            if story.panels[i].locked:
                continue
            node = panels[i]
            # Comment lines after this panel introduce the next one: they stay after it, whatever keys change.
            following = _detach_following(_end_slot(panels, i))
        else:
            node = CommentedMap()
            panels.append(node)
        like = _neighbour(panels, i)
        for key in PANEL_ORDER:
            old = node.get(key) if key in node else (like.get(key) if like is not None else None)
            if key == "characters":
                if not values[key] and key not in node:
                    continue
                _put(node, key, _names(values[key], old), PANEL_ORDER)
            else:
                _put(node, key, _same_style(values[key], old), PANEL_ORDER)
        if isinstance(planned, FilmPanelPlan):
            _write_shot(node, planned)
        _attach_following(_end_slot(panels, i), following)


def _write_shot(node: CommentedMap, planned: FilmPanelPlan) -> None:
    """A film panel's shot, duration, scene heading and action, beside what every panel gets."""
    if planned.scene:
        _put(node, "scene", redact(planned.scene), FILM_ORDER)
    elif "scene" in node:
        del node["scene"]
    shot = CommentedMap((key, value) for key, value in planned.shot.model_dump().items()
                        if not (key == "move" and value == "static"))
    shot.fa.set_flow_style()
    _put(node, "shot", shot, FILM_ORDER)
    _put(node, "duration", round(planned.duration, 2), FILM_ORDER)
    if planned.action:
        _put(node, "action", redact(planned.action), FILM_ORDER)


def _neighbour(panels: CommentedSeq, index: int) -> CommentedMap | None:
    """The nearest earlier panel, whose quoting and list style a new panel copies."""
    for j in range(min(index, len(panels)) - 1, -1, -1):
        if isinstance(panels[j], CommentedMap):
            return panels[j]
    return None


def _same_style(text: str, old: Any) -> Any:
    """`text` quoted the way `old` was (double, single, literal block...); ruamel picks a style when there was none."""
    if isinstance(old, ScalarString) and ("\n" not in text or type(old).__name__ in (
            "LiteralScalarString", "DoubleQuotedScalarString")):
        return type(old)(text)
    return text


def _names(names: list[str], old: Any) -> CommentedSeq:
    seq = CommentedSeq(names)
    block = isinstance(old, CommentedSeq) and old.fa.flow_style() is False and len(old) > 0
    if not block:
        seq.fa.set_flow_style()  # [pilot, fox] reads best and is what the example story uses
    return seq


def _put(mapping: CommentedMap, key: str, value: Any, order: tuple[str, ...]) -> None:
    """Set `mapping[key]`, placing a new key after the keys that precede it in `order`."""
    if key in mapping:
        mapping[key] = value
        return
    earlier = set(order[: order.index(key)])
    position = 0
    for i, existing in enumerate(mapping):
        if existing in earlier:
            position = i + 1
    mapping.insert(position, key, value)


def _insert_section(document: CommentedMap, key: str, value: Any) -> None:
    """Insert a top-level section after the last section that comes before it in SECTION_ORDER.

    ruamel attaches the blank lines and comments between two sections to the END of the first; inserting right
    after that section would slip the new one under a comment that introduced the next. So they move to the end
    of the new section, and the section before keeps its end-of-line comment and a blank line.
    """
    earlier = set(SECTION_ORDER[: SECTION_ORDER.index(key)])
    previous = None
    for existing in document:
        if existing in earlier:
            previous = existing
    if previous is None:
        document.insert(0, key, value)
        return
    at_end = list(document)[-1] == previous
    before = _end_slot(document, previous)
    following = _detach_following(before)
    document.insert(list(document).index(previous) + 1, key, value)
    if following:
        if following.startswith("\n"):
            _attach_following(before, "\n")
        _attach_following(_end_slot(document, key), following)
    elif at_end:
        _attach_following(before, "\n")  # sections added at the end of a file are set apart by a blank line


# A comment slot: (container, key or index, position in ruamel's comment entry). ruamel keeps the comment that
# follows a value (its end-of-line comment, then blank lines and comment lines up to the next key) in one token.
Slot = tuple[Any, Any, int]


def _end_slot(container: Any, key: Any) -> Slot:
    """The slot of the comment that follows `container[key]` in the file: at its deepest last item."""
    value = container[key]
    while isinstance(value, (CommentedMap, CommentedSeq)) and len(value) and not value.fa.flow_style():
        container, key = value, (list(value)[-1] if isinstance(value, CommentedMap) else len(value) - 1)
        value = container[key]
    return container, key, 2 if isinstance(container, CommentedMap) else 0


def _ends_its_line(slot: Slot) -> bool:
    """Whether the token must also end the value's line: true except after a block scalar (| or >), which
    carries its own final newline."""
    container, key, _ = slot
    return type(container[key]).__name__ not in ("LiteralScalarString", "FoldedScalarString")


def _token(slot: Slot) -> str:
    container, key, position = slot
    entry = container.ca.items.get(key)
    token = entry[position] if entry and len(entry) > position else None
    return token.value if isinstance(token, CommentToken) else ""


def _set_token(slot: Slot, text: str) -> None:
    container, key, position = slot
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    while len(entry) <= position:
        entry.append(None)
    old = entry[position]
    mark = old.start_mark if isinstance(old, CommentToken) else CommentMark(0)  # keeps `value   # note` aligned
    entry[position] = CommentToken(text, mark, None) if text else None


def _detach_following(slot: Slot) -> str:
    """Remove and return what follows the value's own line (blank lines, comment lines); keep its end-of-line
    comment."""
    text = _token(slot)
    cut = text.index("\n") + 1 if _ends_its_line(slot) and "\n" in text else 0
    if text[cut:]:
        _set_token(slot, text[:cut])
    return text[cut:]


def _attach_following(slot: Slot, following: str) -> None:
    if not following:
        return
    own = _token(slot) or ("\n" if _ends_its_line(slot) else "")
    _set_token(slot, own + following)
