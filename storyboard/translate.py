"""`storyboard translate`: editions of a story in other languages, written by an LLM, beside the story.

story.yaml → the panels whose text is missing or changed in `story.<lang>.yaml` (a locked or unchanged panel is
kept) → one request (templates/translate_*.j2; names and recurring terms into the edition's glossary, kept across
runs) → the edition laid out with stand-in pictures: a bubble that would need a smaller type size or lose words is
sent back once to be shortened, then left to the compositor, which sets it smaller → an atomic write, only if the
edition file did not change meanwhile.

The planner's providers and options do the asking (`storyboard.plan.backend`), so any OpenAI-compatible server
works as it does for `plan`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from storyboard import __version__
from storyboard.compose.book import book_from_story
from storyboard.compose.typeset import SIZES
from storyboard.errors import PlannerError, ReplyInvalid, StoryError
from storyboard.http import redact
from storyboard.plan.backend import DEFAULT_PROVIDER, ChatBackend, get_backend
from storyboard.plan.planner import DEFAULT_TIMEOUT, LANGUAGES, ask, render
from storyboard.plan.reply import extract_json
from storyboard.resolve import resolve
from storyboard.retry import RetryPolicy
from storyboard.story import Story, load_story, parse_yaml, read_text
from storyboard.story.document import Formatting, dump_yaml
from storyboard.story.edition import Edition, EditionPanel, apply_edition, original_of, panel_source
from storyboard.story.models import is_language_code


@dataclass
class Translated:
    """One edition written (or, with `dry_run`, made)."""

    path: Path
    language: str
    translated: int  # panels sent to the model
    kept: int  # panels kept: locked, or unchanged in the original since they were translated
    shortened: int = 0  # texts sent back once because they did not fit
    smaller: list[str] = field(default_factory=list)  # texts that still do not fit: set smaller on the page
    text: str = ""

    def summary(self) -> str:
        parts = [f"translated {self.translated} panel{'s' if self.translated != 1 else ''}"]
        if self.kept:
            parts.append(f"{self.kept} kept")
        if self.shortened:
            parts.append(f"{self.shortened} shortened to fit")
        if self.smaller:
            parts.append(f"{len(self.smaller)} set smaller ({', '.join(self.smaller)})")
        return f"{self.language}: {', '.join(parts)} → {self.path}"


def edition_path(story_path: Path, language: str) -> Path:
    """Where the edition of `story_path` in `language` lives: little_prince.yaml → little_prince.en.yaml."""
    return story_path.with_name(f"{story_path.stem}.{language}{story_path.suffix or '.yaml'}")


def translate_story(path: str | Path, languages: Sequence[str], *, provider: str = DEFAULT_PROVIDER,
                    model: str | None = None, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                    retries: int = 3, dry_run: bool = False, backend: ChatBackend | None = None,
                    notify: Callable[[str], None] | None = None) -> list[Translated]:
    """Write (or bring up to date) an edition of the story at `path` for each of `languages`."""
    path = Path(path)
    say = (lambda line: notify(redact(line))) if notify else (lambda line: None)
    for language in languages:
        if not is_language_code(language):
            raise PlannerError(f"--to: {language!r} is not a language code such as 'en', 'ja' or 'pt-BR'")
    original = load_story(path)
    if original_of(original) is not None:
        raise StoryError("is an edition; translate the story it is an edition of", file=path)
    if backend is None:
        backend = get_backend(provider, model=model, base_url=base_url)
    policy = RetryPolicy.from_env(retries)
    done = []
    for language in languages:
        done.append(_translate(path, original, language, backend, timeout, policy, say, dry_run))
    return done


def _translate(path: Path, original: Story, language: str, backend: ChatBackend, timeout: float,
               policy: RetryPolicy, say: Callable[[str], None], dry_run: bool) -> Translated:
    target = edition_path(path, language)
    before = target.read_bytes() if target.is_file() else None
    old = _old_edition(target) if before is not None else None
    glossary = dict(old.glossary) if old else {}
    sources = [panel_source(panel) for panel in original.panels]
    keep = {n for n, panel in enumerate(old.panels if old else []) if n < len(sources)
            and (panel.locked or panel.source == sources[n])}
    todo = [n for n in range(len(original.panels)) if n not in keep]
    names = sorted({*original.characters, *(line.speaker for p in original.panels for line in p.dialogue
                                            if line.speaker)} - set(glossary))
    title = old.title if old and not todo and not names else None  # nothing to ask for
    panels: dict[int, dict[str, Any]] = {n: old.panels[n].model_dump() for n in keep} if old else {}
    if title is None:
        say(f"asking {backend.provider} {backend.model} for {_language(language)}: {len(todo)} panel"
            f"{'s' if len(todo) != 1 else ''}" + (f" ({len(keep)} kept)" if keep else "") + "...")
        reply = _request(backend, original, language, todo, names, glossary, timeout, policy, say,
                         "translate_user.j2")
        title = reply["title"]
        glossary.update(reply["glossary"])
        panels.update(_panels(original, reply, todo, glossary, sources))
    edition = Edition(edition_of=path.name, language=language, title=title, glossary=glossary,
                      translated_by={"provider": backend.provider, "model": backend.model},
                      panels=[panels[n] for n in range(len(original.panels))])
    long = _too_long(original, edition, path, set(todo))
    shortened = 0
    if long:
        say(f"{len(long)} text{'s do' if len(long) > 1 else ' does'} not fit; asking {backend.model} to shorten "
            f"{'them' if len(long) > 1 else 'it'}...")
        reply = _request(backend, original, language, sorted({n for n, _ in long}), [], glossary, timeout, policy,
                         say, "translate_shorten.j2", long=[(n + 1, what) for n, what in long],
                         current={n + 1: panels[n] for n, _ in long})
        panels.update(_panels(original, reply, sorted({n for n, _ in long}), glossary, sources))
        edition = edition.model_copy(update={"panels": [EditionPanel(**panels[n])
                                                        for n in range(len(original.panels))]})
        shortened = len(long)
        long = _too_long(original, edition, path, set(todo))
    text = _dump(edition)
    result = Translated(target, language, len(todo), len(keep), shortened,
                        [f"panel {n + 1} {what}" for n, what in long], text)
    if dry_run:
        return result
    from storyboard.story.edits import write_if_unchanged, writing

    with writing(target):
        if not write_if_unchanged(target, before, text.encode("utf-8")):
            raise PlannerError(f"{target} changed while it was being translated; nothing was written, run "
                               "`storyboard translate` again")
    return result


def _old_edition(target: Path) -> Edition:
    data = parse_yaml(read_text(target), target)
    try:
        return Edition.model_validate(data)
    except ValueError as exc:
        raise StoryError(f"is not an edition this command can bring up to date: {exc}", file=target) from None


def _language(code: str) -> str:
    return LANGUAGES.get(code.lower(), code)


def _request(backend: ChatBackend, original: Story, language: str, todo: list[int], names: list[str],
             glossary: dict[str, str], timeout: float, policy: RetryPolicy, say: Callable[[str], None],
             template: str, **extra: Any) -> dict[str, Any]:
    source = [{"n": n + 1, "caption": p.caption, "narration": p.narration, "chapter": p.chapter,
               "dialogue": [{"speaker": line.speaker, "text": line.text} for line in p.dialogue]}
              for n, p in ((n, original.panels[n]) for n in todo)]
    context = {"language": _language(language), "code": language, "source_language": _language(original.language),
               "title": original.title, "names": names, "glossary": glossary,
               "panels": json.dumps(source, ensure_ascii=False, indent=1), **extra}
    messages = [{"role": "system", "content": render("translate_system.j2", **context)},
                {"role": "user", "content": render(template, **context)}]
    text = ask(backend, messages, timeout=timeout, policy=policy, notify=say)  # type: ignore[arg-type]
    return _check(text, original, todo, names, backend)


def _check(text: str, original: Story, todo: list[int], names: list[str], backend: ChatBackend) -> dict[str, Any]:
    """The reply as {title, glossary, panels: {n: {...}}}, or `ReplyInvalid` naming what is wrong."""
    data = extract_json(text)
    problems = []
    if not isinstance(data, dict):
        raise ReplyInvalid(f"{backend.provider} {backend.model} did not answer with a JSON object")
    title = data.get("title")
    glossary = data.get("glossary") or {}
    if not isinstance(title, str) or not title.strip():
        problems.append("title: missing")
    if not isinstance(glossary, dict) or not all(isinstance(v, str) for v in glossary.values()):
        problems.append("glossary: expected an object of name: translation")
        glossary = {}
    missing = [name for name in names if not str(glossary.get(name, "")).strip()]
    if missing:
        problems.append(f"glossary: no translation for {', '.join(repr(n) for n in missing[:5])}")
    got: dict[int, dict[str, Any]] = {}
    for item in data.get("panels") or []:
        if isinstance(item, dict) and isinstance(item.get("n"), int):
            got[item["n"] - 1] = item
    for n in todo:
        item, panel = got.get(n), original.panels[n]
        if item is None:
            problems.append(f"panel {n + 1}: missing")
            continue
        lines = item.get("dialogue") or []
        if len(lines) != len(panel.dialogue):
            problems.append(f"panel {n + 1}: {len(lines)} dialogue lines, expected {len(panel.dialogue)}")
        for key in ("caption", "narration"):
            if getattr(panel, key).strip() and not str(item.get(key) or "").strip():
                problems.append(f"panel {n + 1}: {key} missing")
    if problems:
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        raise ReplyInvalid(f"{backend.provider} {backend.model} gave no valid translation: {shown}")
    return {"title": title.strip(), "glossary": {str(k): str(v).strip() for k, v in glossary.items()},
            "panels": got}


def _panels(original: Story, reply: dict[str, Any], todo: list[int], glossary: dict[str, str],
            sources: list[str]) -> dict[int, dict[str, Any]]:
    out = {}
    for n in todo:
        item, panel = reply["panels"][n], original.panels[n]
        lines = []
        for line, said in zip(panel.dialogue, item.get("dialogue") or []):
            text = said.get("text") if isinstance(said, dict) else said
            # Speakers are names: the glossary's, the same in every panel.
            lines.append({"speaker": glossary.get(line.speaker, line.speaker), "text": str(text or "").strip()})
        out[n] = {"caption": str(item.get("caption") or "").strip() if panel.caption else "",
                  "narration": str(item.get("narration") or "").strip() if panel.narration else "",
                  "chapter": str(item.get("chapter") or "").strip() if panel.chapter else "",
                  "dialogue": lines, "source": sources[n], "locked": False}
    return out


def _too_long(original: Story, edition: Edition, path: Path, asked: set[int]) -> list[tuple[int, str]]:
    """The texts of the panels in `asked` that do not fit their box at the page's type size: (panel index,
    'bubble 2' or 'narration')."""
    story = apply_edition(original, edition, path, None)
    jobs = resolve(story)
    blank = Image.new("RGB", (1, 1))
    book = book_from_story(story, jobs, {job.index: blank for job in jobs}, renderer="draft", version=__version__)
    long = []
    for page in book.pages:
        unit = page.layout.unit
        full = max(6, round(SIZES["bubble"] * unit))
        for key, block in page.text.used.items():
            if key[0] == "bubble":
                _, number, n = key
                if number - 1 in asked and (block.cut or block.size < full):
                    long.append((number - 1, f"bubble {n + 1}"))
            elif key[0] == "narration" and key[1] - 1 in asked and block.cut:
                long.append((key[1] - 1, "narration"))
    return sorted(set(long))


def _dump(edition: Edition) -> str:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def flow(items: list[dict[str, Any]]) -> CommentedSeq:
        seq = CommentedSeq(CommentedMap((k, v) for k, v in item.items() if v or k == "text") for item in items)
        for item in seq:
            item.fa.set_flow_style()
        return seq

    data = CommentedMap()
    data["edition_of"] = edition.edition_of
    data["language"] = edition.language
    data["title"] = edition.title
    data["glossary"] = CommentedMap(edition.glossary)
    if edition.translated_by is not None:
        data["translated_by"] = CommentedMap(edition.translated_by.model_dump())
        data["translated_by"].fa.set_flow_style()
    panels = CommentedSeq()
    for panel in edition.panels:
        item = CommentedMap()
        for key in ("caption", "narration", "chapter"):
            if getattr(panel, key):
                item[key] = getattr(panel, key)
        if panel.dialogue:
            item["dialogue"] = flow([line.model_dump() for line in panel.dialogue])
        item["source"] = panel.source
        if panel.locked:
            item["locked"] = True
        panels.append(item)
    data["panels"] = panels
    header = (f"# The {edition.language} edition of {edition.edition_of}: its text only. Edit a panel and mark it "
              "`locked: true`\n# to keep your words when `storyboard translate` runs again.\n")
    return header + dump_yaml(data, Formatting())
