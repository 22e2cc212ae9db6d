"""`storyboard plan STORY --from script.fountain`: a screenplay planned into a film story, scene by scene.

The script decides what is said and in which scene: scene headings become `scene:` on each scene's first shot, its
speakers become `characters:`, and every line of dialogue goes into a shot verbatim, with its speaker, in order.
The LLM decides how it is shot: how many shots a scene takes, each one's size, angle, move and duration, the action
and the prompt, and what the characters look like. A reply that loses, repeats or reorders a line is sent back
(`DEFAULT_REPAIRS` times) with what is wrong; the lines are then placed by the script itself, never rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.errors import PlannerError, ReplyInvalid, StoryboardError, StoryError
from storyboard.http import redact
from storyboard.plan.backend import DEFAULT_PROVIDER, ChatBackend, get_backend
from storyboard.plan.planner import DEFAULT_REPAIRS, DEFAULT_TIMEOUT, ask_until_valid, render
from storyboard.plan.reply import BadReply, extract_json
from storyboard.plan.screenplay import Said, Script, read_script
from storyboard.retry import RetryPolicy
from storyboard.story import MAX_BUBBLES, story_from_yaml
from storyboard.story.document import Formatting, document_from_bytes, dump_yaml
from storyboard.story.film import MAX_DURATION, Shot

MAX_SCENES = 200
LINES_PER_SHOT = MAX_BUBBLES - 1  # a shot's panel keeps room for a narration box


@dataclass
class ScriptPlan:
    path: Path
    provider: str
    model: str
    scenes: int
    shots: int
    lines: int
    written: bool = False

    def summary(self) -> str:
        return (f"planned {self.shots} shots in {self.scenes} scenes ({self.lines} lines of dialogue kept verbatim) "
                f"with {self.provider} {self.model} → {self.path}")


def plan_from_script(path: str | Path, script_path: str | Path, *, provider: str = DEFAULT_PROVIDER,
                     model: str | None = None, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                     retries: int = 3, repairs: int = DEFAULT_REPAIRS, backend: ChatBackend | None = None,
                     notify: Callable[[str], None] | None = None) -> ScriptPlan:
    """Plan the screenplay at `script_path` into the film story at `path` (written anew, or its panels replaced
    when it exists: its title, style, render and layout are kept, its characters' descriptions too)."""
    path = Path(path)
    say = (lambda line: notify(redact(line))) if notify else (lambda line: None)
    script = read_script(script_path)
    if len(script.scenes) > MAX_SCENES:
        raise StoryError(f"has {len(script.scenes)} scenes; plan at most {MAX_SCENES} at a time", file=script_path)
    before = path.read_bytes() if path.exists() else None
    data = _existing(path, before)
    if any(isinstance(p, dict) and p.get("locked") for p in data.get("panels") or []):
        raise StoryError("has locked panels, and --from replaces every panel with the script's shots; unlock them "
                         "or plan into a new story file", file=path)
    known = dict(data.get("characters") or {})
    if backend is None:
        backend = get_backend(provider, model=model, base_url=base_url)
    lines = [line for scene in script.scenes for line in scene.lines]
    say(f"asking {backend.provider} {backend.model} to shoot {len(script.scenes)} scenes "
        f"({len(lines)} lines of dialogue)...")
    reply = _shots(script, known, backend, timeout, RetryPolicy.from_env(retries), repairs, say)
    panels = _panels(script, reply)
    characters = {name: known.get(name) or reply["characters"].get(name, "") for name in script.speakers}
    missing = [name for name, text in characters.items() if not str(text).strip()]
    if missing:
        raise ReplyInvalid(f"{backend.provider} {backend.model} described no look for {', '.join(missing)}")
    text = _story_text(data, script, characters, panels, backend)
    try:
        story_from_yaml(text, file=path)
    except StoryboardError as exc:
        raise PlannerError(f"the plan does not make a valid story, so nothing was written: {exc}") from None
    from storyboard.story.edits import write_if_unchanged, writing

    with writing(path):
        if not write_if_unchanged(path, before, text.encode("utf-8")):
            raise PlannerError(f"{path} changed while the plan was being written; nothing was written, run "
                               "`storyboard plan` again")
    return ScriptPlan(path, backend.provider, backend.model, len(script.scenes), len(panels), len(lines), True)


def _existing(path: Path, before: bytes | None) -> dict[str, Any]:
    if before is None:
        return {}
    document = document_from_bytes(before, path, require_panels=False)
    return document.data


def _request(script: Script, known: dict[str, Any]) -> dict[str, Any]:
    number = 0
    scenes = []
    for n, scene in enumerate(script.scenes, start=1):
        said = []
        for line in scene.lines:
            number += 1
            said.append({"n": number, "speaker": line.speaker, "text": line.text,
                         **({"how": line.parenthetical} if line.parenthetical else {})})
        scenes.append({"scene": n, "heading": scene.heading, "action": " ".join(scene.action),
                       **({"notes": " ".join(scene.notes)} if scene.notes else {}), "lines": said})
    return {"title": script.title, "scenes": scenes,
            "characters": [name for name in script.speakers if not str(known.get(name) or "").strip()]}


def _shots(script: Script, known: dict[str, Any], backend: ChatBackend, timeout: float, policy: RetryPolicy,
           repairs: int, say: Callable[[str], None]) -> dict[str, Any]:
    request = _request(script, known)
    context = {"script": json.dumps(request, ensure_ascii=False, indent=1), "describe": request["characters"],
               "lines_per_shot": LINES_PER_SHOT}
    messages = [{"role": "system", "content": render("plan_script_system.j2", **context)},
                {"role": "user", "content": render("plan_script_user.j2", **context)}]
    return ask_until_valid(backend, messages, lambda text: _check(text, script, request["characters"]),
                           what="shot list", repair=lambda problems: render("plan_script_repair.j2",
                                                                            problems=problems),
                           repairs=repairs, timeout=timeout, policy=policy, say=say)


def _check(text: str, script: Script, describe: list[str]) -> dict[str, Any]:
    """The reply's shots and character sheet, or `BadReply` listing what is wrong."""
    data = extract_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("shots"), list):
        raise BadReply(['the reply must be one JSON object with a "shots" list'])
    problems: list[str] = []
    characters = data.get("characters") if isinstance(data.get("characters"), dict) else {}
    for name in describe:
        if not str(characters.get(name) or "").strip():
            problems.append(f"characters: no description for {name!r}")
    scene_of = {}
    number = 0
    for n, scene in enumerate(script.scenes, start=1):
        for _ in scene.lines:
            number += 1
            scene_of[number] = n
    shots, last_scene, next_line = [], 0, 1
    for i, item in enumerate(data["shots"]):
        where = f"shots[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object")
            continue
        scene = item.get("scene")
        if not isinstance(scene, int) or not 1 <= scene <= len(script.scenes) or scene < last_scene:
            problems.append(f"{where}.scene: expected a scene number from {max(last_scene, 1)} to "
                            f"{len(script.scenes)}, in order")
            continue
        last_scene = scene
        if not str(item.get("prompt") or "").strip():
            problems.append(f"{where}.prompt: missing")
        try:
            shot = Shot.model_validate(item.get("shot") or {})
        except ValueError as exc:
            problems.append(f"{where}.shot: {' '.join(str(exc).split())[:200]}")
            shot = Shot()
        duration = item.get("duration")
        if not isinstance(duration, int | float) or not 0 < duration <= MAX_DURATION:
            problems.append(f"{where}.duration: expected seconds, more than 0 and at most {MAX_DURATION:g}")
            duration = None
        said = item.get("lines") or []
        if not isinstance(said, list) or not all(isinstance(n, int) for n in said):
            problems.append(f"{where}.lines: expected a list of line numbers")
            said = []
        for n in said:
            if n != next_line:
                problems.append(f"{where}.lines: line {n} is out of order or repeated (line {next_line} comes next)")
                break
            if scene_of.get(n) != scene:
                problems.append(f"{where}.lines: line {n} belongs to scene {scene_of.get(n)}, not {scene}")
                break
            next_line += 1
        shots.append({"scene": scene, "prompt": str(item.get("prompt") or "").strip(), "shot": shot,
                      "duration": duration, "action": str(item.get("action") or "").strip(), "lines": said,
                      "characters": [c for c in item.get("characters") or [] if c in script.speakers]})
    if next_line <= len(scene_of):
        problems.append(f"lines {next_line} to {len(scene_of)} are in no shot: every line goes into a shot once")
    covered = {shot["scene"] for shot in shots}
    for n in range(1, len(script.scenes) + 1):
        if n not in covered:
            problems.append(f"scene {n} has no shot")
    if problems:
        raise BadReply(problems[:20])
    return {"shots": shots, "characters": {str(k): str(v) for k, v in characters.items()}}


def _panels(script: Script, reply: dict[str, Any]) -> list[dict[str, Any]]:
    lines: list[Said] = [line for scene in script.scenes for line in scene.lines]
    panels: list[dict[str, Any]] = []
    started: set[int] = set()
    for shot in reply["shots"]:
        scene = script.scenes[shot["scene"] - 1]
        said = [lines[n - 1] for n in shot["lines"]]
        parts = [said[i:i + LINES_PER_SHOT] for i in range(0, len(said), LINES_PER_SHOT)] or [[]]
        for part in parts:  # more lines than a panel holds: the same shot, held again
            panel: dict[str, Any] = {}
            if shot["scene"] not in started:
                started.add(shot["scene"])
                if scene.heading:
                    panel["scene"] = scene.heading
            framing = {k: v for k, v in shot["shot"].model_dump().items() if v not in (None, "static")}
            if isinstance(framing.get("lens"), float) and framing["lens"].is_integer():
                framing["lens"] = int(framing["lens"])
            panel["shot"] = framing or {"move": "static"}
            panel["duration"] = round(shot["duration"] / len(parts), 2)
            panel["prompt"] = shot["prompt"]
            if shot["characters"]:  # who can be seen: a voice off screen (O.S., V.O.) is heard, not drawn
                panel["characters"] = shot["characters"]
            if shot["action"]:
                panel["action"] = shot["action"]
            if part:
                panel["dialogue"] = [{"speaker": line.speaker, "text": line.text} for line in part]
            how = [f"{line.speaker} {line.parenthetical}" for line in part if line.parenthetical]
            notes = (scene.notes if "scene" in panel else []) + how
            if notes:
                panel["notes"] = "; ".join(notes)
            panels.append(panel)
    return panels


def _story_text(data: dict[str, Any], script: Script, characters: dict[str, str], panels: list[dict[str, Any]],
                backend: ChatBackend) -> str:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    document = CommentedMap()
    document["title"] = data.get("title") or script.title or "Untitled"
    document["medium"] = "film"
    for key, value in data.items():
        if key not in ("title", "medium", "characters", "panels", "planned_by"):
            document[key] = value
    document["characters"] = CommentedMap(characters)
    by = CommentedMap([("provider", backend.provider), ("model", backend.model)])
    by.fa.set_flow_style()
    document["planned_by"] = by
    seq = CommentedSeq()
    for panel in panels:
        item = CommentedMap()
        for key, value in panel.items():
            if key == "shot":
                value = CommentedMap(value)
                value.fa.set_flow_style()
            elif key == "dialogue":
                value = CommentedSeq(CommentedMap(line) for line in value)
                for line in value:
                    line.fa.set_flow_style()
            elif key == "characters":
                value = CommentedSeq(value)
                value.fa.set_flow_style()
            item[key] = value
        seq.append(item)
    document["panels"] = seq
    return dump_yaml(document, Formatting())
