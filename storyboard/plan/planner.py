"""`storyboard plan`: ask an LLM for the panels of a story and write them into the story file.

read the story (panels optional) → messages from templates/plan_*.j2 → backend (retried) → parse and check the
reply → repair rounds if needed → write the panels into the round-trip YAML → validate → atomic save.
Nothing is written unless a complete, valid plan came back; the file is otherwise left byte for byte as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from storyboard.errors import PlannerError, ProviderUnavailable, ReplyInvalid, StoryboardError
from storyboard.http import redact
from storyboard.plan.backend import DEFAULT_PROVIDER, ChatBackend, Message, get_backend
from storyboard.plan.reply import BadReply, Plan, Request, parse_reply, reply_schema
from storyboard.retry import RetryPolicy, retrying
from storyboard.story import Story, story_from_yaml
from storyboard.story.document import Formatting, StoryDocument, document_from_bytes, dump_yaml
from storyboard.story.reader import read_bytes

T = TypeVar("T")
DEFAULT_PANELS = 8
MAX_PANELS = 500
PART_PANELS = 24  # the most panels asked for in one request; longer stories are planned in parts
DEFAULT_TIMEOUT = 180.0  # seconds per request: a long plan from a busy model can take a minute or two
DEFAULT_REPAIRS = 2
MAX_REPLY_ECHO = 20_000  # characters of a bad reply sent back in a repair request

LANGUAGES = {
    "en": "English", "zh": "Chinese", "zh-cn": "Simplified Chinese", "zh-hans": "Simplified Chinese",
    "zh-tw": "Traditional Chinese", "zh-hant": "Traditional Chinese", "ja": "Japanese", "ko": "Korean",
    "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "pt-br": "Brazilian Portuguese", "ru": "Russian", "ar": "Arabic", "hi": "Hindi", "vi": "Vietnamese",
    "th": "Thai", "id": "Indonesian", "nl": "Dutch", "pl": "Polish", "tr": "Turkish", "uk": "Ukrainian",
}


@dataclass
class PlanResult:
    path: Path
    provider: str
    model: str
    panels: int  # panels in the story now
    locked: int  # of which were locked and kept
    added: list[str] = field(default_factory=list)  # sections the plan added: style, characters, render
    written: bool = False
    yaml: str = ""  # the new panels (and added sections) as YAML
    story: Story | None = None

    def summary(self) -> str:
        kept = f" ({self.locked} locked kept)" if self.locked else ""
        where = f"→ {self.path}" if self.written else f"(dry run: {self.path} not changed)"
        line = f"planned {self.panels} panels{kept} with {self.provider} {self.model} {where}"
        if self.added:
            line += f"; added {', '.join(self.added)}: review {'them' if len(self.added) > 1 else 'it'}"
        return line


def plan_story(path: str | Path, *, provider: str = DEFAULT_PROVIDER, model: str | None = None,
               base_url: str | None = None, panels: int | None = None, timeout: float = DEFAULT_TIMEOUT,
               dry_run: bool = False, retries: int = 3, repairs: int = DEFAULT_REPAIRS,
               backend: ChatBackend | None = None, notify: Callable[[str], None] | None = None) -> PlanResult:
    """Plan the panels of the story at `path` with an LLM and write them into it (unless `dry_run`).

    `panels` defaults to the number the story has, or 8. Locked panels (`locked: true`) are kept as they are.
    Raises `StoryError` for a bad story file and `PlannerError` (or a subclass) when no valid plan came back.
    """
    path = Path(path)
    say = (lambda line: notify(redact(line))) if notify else (lambda line: None)
    original = read_bytes(path)
    document = document_from_bytes(original, path, require_panels=False)
    story = document.story
    count, locked = _panels_to_plan(path, story, panels, timeout)
    if backend is None:
        backend = get_backend(provider, model=model, base_url=base_url)
    parts = plan_parts(count, story.layout.columns * story.layout.rows if story.layout.rows else None)
    say(f"asking {backend.provider} {backend.model} for {count} panel{'s' if count != 1 else ''}"
        + (f" ({len(locked)} locked)" if locked else "")
        + (f" in {len(parts)} parts" if len(parts) > 1 else "") + "...")
    try:
        plan = _plan_in_parts(story, backend, parts=parts, locked=locked, timeout=timeout,
                              policy=RetryPolicy.from_env(retries), repairs=repairs, say=say)
    except PlannerError as exc:
        raise type(exc)(redact(str(exc))) from None

    from storyboard.plan.document import apply_plan

    added = apply_plan(document.data, story, plan, provider=backend.provider, model=backend.model)
    text = document.dump()
    try:
        new_story = story_from_yaml(text, file=path)
    except StoryboardError as exc:
        raise PlannerError(f"the plan does not make a valid story, so nothing was written: {exc}") from None
    result = PlanResult(path=path, provider=backend.provider, model=backend.model, panels=len(new_story.panels),
                        locked=len(locked), added=added, yaml=_fragment(document, added), story=new_story)
    if dry_run:
        return result
    from storyboard.story.edits import write_if_unchanged, writing

    try:
        with writing(path):
            written = write_if_unchanged(path, original, text.encode("utf-8"))
    except StoryboardError as exc:
        raise PlannerError(str(exc)) from None
    if not written:
        raise PlannerError(f"{path} changed while the plan was being written; nothing was written, "
                           "run `storyboard plan` again")
    result.written = True
    return result


def _panels_to_plan(path: Path, story: Story, panels: int | None, timeout: float) -> tuple[int, dict[int, Any]]:
    """How many panels to plan, and the locked ones (by 0-based position) the plan keeps as they are."""
    count = panels if panels is not None else (len(story.panels) or DEFAULT_PANELS)
    if panels is None and count > MAX_PANELS:
        raise PlannerError(f"{path} has {count} panels; a plan has at most {MAX_PANELS} "
                           f"(choose how many with --panels N)")
    if not 1 <= count <= MAX_PANELS:
        raise PlannerError(f"--panels must be between 1 and {MAX_PANELS} (got {count})")
    locked = {i: p for i, p in enumerate(story.panels) if p.locked}
    beyond = [i for i in locked if i >= count]
    if beyond:
        last = max(beyond) + 1
        raise PlannerError(f"{path}: panel {last} is locked, so the story needs at least {last} panels "
                           f"(got --panels {count}); unlock it or plan more panels")
    if len(locked) == count:
        raise PlannerError(f"all {count} panels of {path} are locked: nothing to plan "
                           "(unlock some, or plan more with --panels)")
    if timeout <= 0:
        raise PlannerError(f"--timeout must be more than 0 seconds (got {timeout:g})")
    return count, locked


def plan_parts(count: int, per_page: int | None = None, most: int = PART_PANELS) -> list[range]:
    """The 0-based panel slots of each request: one request up to `most` panels; beyond that, whole pages
    (`per_page` panels, when the story sets `layout.rows`) as many as fit in `most`, else `most` at a time."""
    if count <= most:
        return [range(count)]
    size = most if not per_page or per_page > most else per_page * (most // per_page)
    return [range(start, min(count, start + size)) for start in range(0, count, size)]


def _plan_in_parts(story: Story, backend: ChatBackend, *, parts: list[range], locked: dict[int, Any],
                   timeout: float, policy: RetryPolicy, repairs: int, say: Callable[[str], None]) -> Plan:
    """Plan each part in turn. Each request carries the story so far: the outline, the style and character sheet
    (the first part's proposals, if the story had none), and the previous part's panels in brief."""
    count = parts[-1].stop
    whole = Plan(panels=[])
    for number, part in enumerate(parts, start=1):
        request = Request(
            count=len(part),
            names=tuple(story.characters) or tuple(whole.characters or ()),
            locked={i - part.start: {"prompt": p.prompt, "caption": p.caption, "characters": list(p.characters)}
                    for i, p in locked.items() if i in part},
            propose_style=number == 1 and not story.style.prefix.strip(),
            propose_characters=number == 1 and not story.characters,
            film=story.medium == "film",
        )
        context: dict[str, Any] = {}
        if len(parts) > 1:
            context["part"] = {"number": number, "of": len(parts), "first": part.start + 1, "last": part.stop,
                               "total": count}
            context["previous"] = [{"number": i + 1, "prompt": p.prompt, "caption": p.caption,
                                    "characters": p.characters}
                                   for i, p in enumerate(whole.panels) if i >= part.start - len(part)]
            if number > 1:
                say(f"part {number} of {len(parts)}: panels {part.start + 1} to {part.stop}...")
        if number > 1 and whole.style is not None:
            context["style_prefix"] = whole.style.prefix
        if number > 1 and whole.characters:
            context["characters"] = whole.characters
        try:
            plan = _plan(story, backend, request=request, context=context, timeout=timeout, policy=policy,
                         repairs=repairs, say=say)
        except ReplyInvalid as exc:
            if len(parts) == 1:
                raise
            raise ReplyInvalid(f"part {number} of {len(parts)} (panels {part.start + 1} to {part.stop}): {exc}") \
                from None
        whole.panels.extend(plan.panels)
        if number == 1:
            whole.style, whole.characters = plan.style, plan.characters
    return whole


def _plan(story: Story, backend: ChatBackend, *, request: Request, context: dict[str, Any], timeout: float,
          policy: RetryPolicy, repairs: int, say: Callable[[str], None]) -> Plan:
    return ask_until_valid(backend, plan_messages(story, request, **context), lambda text: parse_reply(text, request),
                           what="plan", repair=lambda problems: render("plan_repair.j2", problems=problems,
                                                                        count=request.count),
                           repairs=repairs, timeout=timeout, policy=policy, say=say)


def ask_until_valid(backend: ChatBackend, messages: list[Message], parse: Callable[[str], T], *, what: str,
                    repair: Callable[[list[str]], str], repairs: int, timeout: float, policy: RetryPolicy,
                    say: Callable[[str], None]) -> T:
    """`parse` of the model's reply to `messages`; a reply it refuses (`BadReply`) is sent back with its problems
    (`repair` words the request) up to `repairs` times, then `ReplyInvalid` names the first problems."""
    conversation = messages
    replies = repairs + 1
    for attempt in range(1, replies + 1):
        text = ask(backend, conversation, timeout=timeout, policy=policy, notify=say)
        try:
            return parse(text)
        except BadReply as bad:
            problems = bad.problems
        if attempt < replies:
            more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
            say(f"the reply is not a valid {what} ({problems[0]}{more}); "
                f"asking {backend.model} to fix it (repair {attempt} of {repairs})")
            conversation = [
                *messages,
                {"role": "assistant", "content": text[:MAX_REPLY_ECHO]},
                {"role": "user", "content": repair(problems)},
            ]
    shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
    raise ReplyInvalid(f"{backend.provider} {backend.model} gave no valid {what} in {replies} "
                       f"{'replies' if replies > 1 else 'reply'}: {shown}")


def plan_messages(story: Story, request: Request, *, part: dict[str, int] | None = None,
                  previous: Sequence[dict[str, Any]] = (), style_prefix: str | None = None,
                  characters: dict[str, str] | None = None) -> list[Message]:
    """The system and user messages of a planning request, from templates/plan_system.j2 and plan_user.j2.

    A story planned in parts gives each request its `part` (number, of, first, last, total), the `previous`
    part's panels in brief, and the style and characters the first part proposed."""
    language_name = LANGUAGES.get(story.language.lower().replace("_", "-"),
                                  LANGUAGES.get(story.language.split("-")[0].split("_")[0].lower(), story.language))
    context = {
        "title": story.title,
        "outline": story.outline.strip(),
        "language": story.language,
        "language_name": language_name,
        "style_prefix": story.style.prefix.strip() if style_prefix is None else style_prefix,
        "characters": story.descriptions() if characters is None else characters,
        "part": part,
        "previous": list(previous),
        "count": request.count,
        "locked": [{"index": i, "json": json.dumps(content, ensure_ascii=False)}
                   for i, content in sorted(request.locked.items())],
        "schema": json.dumps(reply_schema(request), ensure_ascii=False),
        "propose_style": request.propose_style,
        "propose_characters": request.propose_characters,
        "film": request.film,
    }
    return [
        {"role": "system", "content": render("plan_system.j2", **context)},
        {"role": "user", "content": render("plan_user.j2", **context)},
    ]


def render(template: str, **context: Any) -> str:
    from storyboard.templates import environment

    # Prompts are plain text for a model, not HTML: no autoescaping.
    return environment(autoescape=False).get_template(template).render(**context).strip() + "\n"


def _fragment(document: StoryDocument, added: list[str]) -> str:
    """The part of the document the plan wrote, as YAML (what --dry-run prints), indented as the file is."""
    from ruamel.yaml.comments import CommentedMap

    data = document.data
    part = CommentedMap((key, data[key]) for key in (*added, "planned_by", "panels") if key in data)
    return dump_yaml(part, Formatting(indent=document.formatting.indent))


def ask(backend: ChatBackend, messages: list[Message], *, timeout: float, policy: RetryPolicy,
         notify: Callable[[str], None]) -> str:
    """`backend.complete(messages)`, each attempt within `timeout` seconds, retried when the provider is unavailable."""
    def late(seconds: float) -> ProviderUnavailable:
        return ProviderUnavailable(f"{backend.provider} {backend.model} did not finish answering within {seconds:g} s")

    return retrying(lambda seconds: backend.complete(messages, timeout=seconds), policy=policy, timeout=timeout,
                    late=late, notify=notify)
