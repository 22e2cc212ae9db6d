"""What the model must answer: the reply's pydantic models, the JSON schema sent with the request, a tolerant
parser (code fences, chatter around the JSON, <think> blocks) and the checks that decide whether a repair is needed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_REPLY_CHARS = 500_000
MAX_PROBLEMS = 20  # shown to the model in a repair request; more would only bury the first ones


class PanelPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(description="English, one line, concrete and visual: shot framing, who is there and what "
                                    "they do, setting, light. No style words, no descriptions of the characters.")
    caption: str = Field(description="One or two short sentences for the reader, in the story's language.")
    characters: list[str] = Field(description="Names, exactly as in the character sheet, of the characters who "
                                              "appear in the panel; [] when none does.")


class ShotPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    size: str = Field(description="extreme-wide, wide, full, medium-wide, medium, medium-close, close-up or "
                                  "extreme-close-up.")
    angle: str = Field("eye-level", description="eye-level, high, low, overhead, dutch, over-the-shoulder or pov.")
    move: str = Field("static", description="static, pan-left, pan-right, tilt-up, tilt-down, push-in, pull-out, "
                                            "truck-left or truck-right.")


class FilmPanelPlan(PanelPlan):
    """A panel of a film story: a shot, with its framing and time on screen."""

    scene: str = Field("", description="A scene heading (INT. PLACE - DAY) on the first shot of each scene; "
                                       "empty on the others.")
    shot: ShotPlan = Field(description="How the shot is framed and how the camera moves.")
    duration: float = Field(description="Seconds on screen: long enough to read its caption and see its action.")
    action: str = Field("", description="One sentence: what happens in the shot.")


class StylePlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prefix: str = Field(description="Comma-separated English style words put in front of every panel prompt "
                                    "(medium, palette, lighting, mood).")
    negative: str = Field("", description="Comma-separated English negative prompt for every panel.")


class PlanReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    panels: list[PanelPlan] = Field(description="Every panel of the page, in reading order.")
    style: StylePlan | None = Field(None, description="A style for the whole page.")
    characters: dict[str, str] | None = Field(
        None, description="Character sheet: short name -> English visual description (age, build, hair, clothes, "
                          "colours) that stays the same in every panel.")


class FilmPlanReply(PlanReply):
    panels: list[FilmPanelPlan] = Field(description="Every shot of the film, in order.")  # type: ignore[assignment]


@dataclass(frozen=True)
class Request:
    """What the model was asked for; a reply is checked against it."""

    count: int
    names: tuple[str, ...] = ()  # the story's character sheet
    locked: dict[int, dict[str, Any]] = field(default_factory=dict)  # 0-based slot -> the locked panel's content
    propose_style: bool = False
    propose_characters: bool = False
    film: bool = False  # a film story: each panel is a shot (`FilmPanelPlan`)

    @property
    def reply_model(self) -> type[PlanReply]:
        return FilmPlanReply if self.film else PlanReply


@dataclass
class Plan:
    panels: list[PanelPlan]  # all `count` slots; locked slots hold the locked panels' own content
    style: StylePlan | None = None
    characters: dict[str, str] | None = None


class BadReply(Exception):
    """A reply that is not a valid plan; `problems` are sent back to the model in a repair request."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def reply_schema(request: Request) -> dict[str, Any]:
    """The JSON schema of the reply for this request: exact panel count, the allowed character names."""
    schema = request.reply_model.model_json_schema()
    props = schema["properties"]
    panels = props["panels"]
    panels["minItems"] = panels["maxItems"] = request.count
    characters = schema["$defs"]["FilmPanelPlan" if request.film else "PanelPlan"]["properties"]["characters"]
    if request.names:
        characters["items"]["enum"] = list(request.names)
    elif not request.propose_characters:
        characters["maxItems"] = 0
    required = ["panels"]
    for name, wanted in (("style", request.propose_style), ("characters", request.propose_characters)):
        if wanted:
            required.append(name)
            props[name] = props[name]["anyOf"][0]  # asked for: an object, not null
            props[name]["description"] = request.reply_model.model_fields[name].description
        else:
            del props[name]
    if not request.propose_style:
        del schema["$defs"]["StylePlan"]
    schema["required"] = required
    return schema


def parse_reply(text: str, request: Request) -> Plan:
    """Find the plan in the model's reply and check it; raise `BadReply` listing every problem found."""
    data = extract_json(text)
    if isinstance(data, list):
        data = {"panels": data}
    if isinstance(data, dict) and "panels" not in data and len(data) == 1:
        inner = next(iter(data.values()))
        if isinstance(inner, dict) and "panels" in inner:
            data = inner
    if not isinstance(data, dict) or "panels" not in data:
        raise BadReply(['the reply must be one JSON object with a "panels" list'])
    if isinstance(data["panels"], list):
        # A locked slot's content is discarded, so nothing the model put there can make the reply invalid.
        data = {**data, "panels": [request.locked.get(i, item) for i, item in enumerate(data["panels"])]}
    try:
        reply = request.reply_model.model_validate(data)
    except ValidationError as exc:
        raise BadReply([_problem(error) for error in exc.errors()][:MAX_PROBLEMS]) from None

    problems = []
    if len(reply.panels) != request.count:
        problems.append(f"panels: expected exactly {request.count} panels, got {len(reply.panels)}")
    proposed = {}
    if request.propose_characters and reply.characters:
        for name, description in reply.characters.items():
            if not name.strip() or not description.strip():
                problems.append(f"characters.{name}: needs a name and a visual description")
            else:
                proposed[name.strip()] = description.strip()
    known = list(request.names) or list(proposed)
    canonical = {name.lower(): name for name in known}
    for i, panel in enumerate(reply.panels):
        if i in request.locked:
            continue
        panel.prompt = " ".join(panel.prompt.split())
        panel.caption = panel.caption.strip()
        if not panel.prompt:
            problems.append(f"panels[{i}].prompt: must not be empty")
        names: list[str] = []
        for j, name in enumerate(panel.characters):
            match = canonical.get(name.strip().lower())
            if match is None:
                sheet = f"use only: {', '.join(known)}" if known else "the character sheet is empty: use []"
                problems.append(f"panels[{i}].characters[{j}]: {name!r} is not in the character sheet ({sheet})")
            elif match not in names:
                names.append(match)
        panel.characters = names
        if isinstance(panel, FilmPanelPlan):
            problems.extend(_shot_problems(panel, i))
    if problems:
        raise BadReply(problems[:MAX_PROBLEMS])

    style = reply.style if request.propose_style and reply.style and reply.style.prefix.strip() else None
    if style is not None:
        style = StylePlan(prefix=" ".join(style.prefix.split()), negative=" ".join(style.negative.split()))
    return Plan(panels=reply.panels, style=style, characters=proposed or None)


def _shot_problems(panel: FilmPanelPlan, i: int) -> list[str]:
    """What is wrong with a planned shot, by the story file's own vocabulary (aliases such as CU are accepted)."""
    from storyboard.story.film import MAX_DURATION, Shot

    problems = []
    try:
        checked = Shot.model_validate(panel.shot.model_dump())
        panel.shot = ShotPlan(size=checked.size or "medium", angle=checked.angle or "eye-level", move=checked.move)
    except ValueError as exc:
        problems.append(f"panels[{i}].shot: {' '.join(str(exc).split())[:300]}")
    if not 0 < panel.duration <= MAX_DURATION:
        problems.append(f"panels[{i}].duration: expected seconds, more than 0 and at most {MAX_DURATION:g}")
    panel.scene, panel.action = " ".join(panel.scene.split()), " ".join(panel.action.split())
    return problems


_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_OPENERS = re.compile(r"[{\[]")


def extract_json(text: str) -> Any:
    """The JSON value in a reply that may wrap it in code fences or sentences: the first object holding "panels",
    else the first object or list found."""
    if not text or not text.strip():
        raise BadReply(["the reply was empty"])
    if len(text) > MAX_REPLY_CHARS:
        raise BadReply([f"the reply is {len(text)} characters long; a plan needs far fewer"])
    text = _THINK.sub("", text)
    decoder = json.JSONDecoder()
    first: Any = None
    pos = 0
    while match := _OPENERS.search(text, pos):
        try:
            value, end = decoder.raw_decode(text, match.start())
        except ValueError:
            pos = match.start() + 1
            continue
        if isinstance(value, dict) and "panels" in value:
            return value
        if first is None:
            first = value
        pos = end  # never re-parse the inside of a value already read
    if first is None:
        raise BadReply(["the reply holds no JSON object; answer with JSON only"])
    return first


def _problem(error: dict[str, Any]) -> str:
    where = ""
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else ("." if where else "") + str(part)
    message = "required field is missing" if error["type"] == "missing" else error["msg"]
    message = message[:1].lower() + message[1:]
    return f"{where}: {message}" if where else message
