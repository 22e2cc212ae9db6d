"""Reading a story file: bytes → text → YAML → `Story`, refusing hostile files cheaply, every error naming the
file and, where it can, the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from storyboard.errors import StoryError, shorten
from storyboard.files import read_regular_file
from storyboard.story.edition import Edition, apply_edition, is_edition, text_only_problem
from storyboard.story.messages import describe, field_path, line_of, story_error
from storyboard.story.models import Story, StoryDraft

# Limits that keep hostile files (alias bombs, absurd nesting, huge files) cheap to reject.
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_VALUES = 100_000
MAX_DEPTH = 50


def read_text(path: str | Path) -> str:
    """Read a story file as UTF-8 text, with errors a user can act on."""
    return decode(read_bytes(path), path)


def read_bytes(path: str | Path) -> bytes:
    """The story file's bytes; a missing file, a folder, a FIFO or device, or a file over `MAX_FILE_BYTES` is one
    `StoryError` line (never a read that blocks or never ends)."""
    try:
        return read_regular_file(path, MAX_FILE_BYTES)
    except ValueError as exc:
        problem = str(exc)
        if problem == "it is a folder":
            problem = "is a folder, not a story file"
        elif problem.startswith("it is "):
            problem = problem.replace("it is ", "is ", 1).replace("; at most", "; a story file is at most")
        elif problem not in ("no such file", "permission denied"):
            problem = f"cannot read: {problem}"
        raise StoryError(problem, file=path) from None


def decode(data: bytes, path: str | Path) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise StoryError("is UTF-16; save it as UTF-8", file=path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise StoryError(f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8",
                         file=path, line=line) from None
    if "\x00" in text:
        raise StoryError("contains NUL bytes; is it really a YAML file?", file=path)
    return text


def parse_yaml(text: str, file: str | Path | None = None) -> Any:
    """Parse YAML text into ruamel's round-trip objects, which remember the line of every key."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    _check_flow_depth(text, file)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    if "*" in text:  # no alias, nothing to expand
        _check_expansion(yaml, text, file)
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = shorten(" ".join(str(exc.problem or exc.context or "invalid YAML").split()))
        raise StoryError(f"invalid YAML: {problem}", file=file, line=mark.line + 1 if mark else None) from None
    except YAMLError as exc:
        raise StoryError(f"invalid YAML: {' '.join(str(exc).split())}", file=file) from None
    except RecursionError:
        raise StoryError(f"YAML nested too deeply (more than {MAX_DEPTH} levels)", file=file) from None
    _check_size(data, file)
    return data


def _check_expansion(yaml: Any, text: str, file: str | Path | None) -> None:
    """Refuse a document whose aliases would expand past `MAX_VALUES` values, from its parse events alone: before
    anything is built from it (a 'billion laughs' of nested aliases), in every path, error messages included."""
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent

    sizes: dict[str, int] = {}  # values each anchor stands for
    open_: list[list[Any]] = [[None, 0]]  # [anchor, values so far] of each collection being read
    try:
        for event in yaml.parse(text):
            if isinstance(event, CollectionStartEvent):
                open_.append([event.anchor, 1])
                continue
            if isinstance(event, CollectionEndEvent):
                anchor, count = open_.pop()
                if anchor:
                    sizes[anchor] = count
            elif isinstance(event, ScalarEvent):
                count = 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif isinstance(event, AliasEvent):
                count = sizes.get(event.anchor, 1)
            else:
                continue
            open_[-1][1] += count
            if sum(level[1] for level in open_) > MAX_VALUES:
                raise StoryError(f"YAML expands to more than {MAX_VALUES} values (nested aliases?)", file=file)
    except YAMLError:
        return  # not YAML: reading it for real reports where


def _check_flow_depth(text: str, file: str | Path | None) -> None:
    """Refuse absurdly nested [ ] / { } before parsing: the parser's time grows steeply with that depth."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise StoryError(f"YAML nested too deeply (more than {MAX_DEPTH} levels)", file=file)
        elif char in "]}":
            depth = max(0, depth - 1)


def _check_size(data: Any, file: str | Path | None) -> None:
    """Refuse documents whose expanded size is absurd (e.g. nested alias 'billion laughs')."""
    count = 0
    stack = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise StoryError(f"YAML expands to more than {MAX_VALUES} values (nested aliases?)", file=file)
        if depth > MAX_DEPTH:
            raise StoryError(f"YAML nested too deeply (more than {MAX_DEPTH} levels)", file=file)
        if isinstance(node, dict):
            stack.extend((k, depth + 1) for k in node.keys())
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def load_story(path: str | Path) -> Story:
    """Load and validate a story file; raise `StoryError` naming file, line and field on any problem."""
    text = read_text(path)
    return story_from_yaml(text, file=path)


def story_from_yaml(text: str, file: str | Path | None = None, *, require_panels: bool = True) -> Story:
    """Validate story YAML text. With `require_panels=False` a story without panels passes (as a `StoryDraft`).
    An edition's text gives its original's story in the edition's words."""
    data = _mapping(text, file, require_panels)
    if is_edition(data):
        return _edition(data, file)
    return _validated(data, file, require_panels)


def _mapping(text: str, file: str | Path | None, require_panels: bool) -> dict[str, Any]:
    """The YAML mapping a story file holds, or one line saying why there is none."""
    needs = "'title' and 'panels'" if require_panels else "'title'"
    if not text.strip():
        raise StoryError(f"the file is empty; a story needs at least {needs}", file=file)
    data = parse_yaml(text, file)
    if data is None:
        raise StoryError(f"the file holds no YAML values; a story needs at least {needs}", file=file)
    if not isinstance(data, dict):
        raise StoryError(f"expected a mapping of story fields (title:, panels:, ...), got {describe(data)}",
                         file=file, line=1)
    return data


def _validated(data: dict[str, Any], file: str | Path | None, require_panels: bool) -> Story:
    try:
        return (Story if require_panels else StoryDraft).model_validate(data)
    except ValidationError as exc:
        raise story_error(exc, data, file) from None


def _edition(data: dict[str, Any], file: str | Path | None) -> Story:
    """The story an edition file tells: its original's, in the edition's words (see `storyboard.story.edition`)."""
    problem = text_only_problem(data)
    if problem is not None:
        message, loc = problem
        raise StoryError(message, file=file, line=line_of(data, loc), field=field_path(loc))
    try:
        edition = Edition.model_validate(data)
    except ValidationError as exc:
        raise story_error(exc, data, file) from None
    folder = Path(file).parent if file is not None else Path(".")
    original_path = folder / edition.edition_of
    if not original_path.is_file():
        raise StoryError(f"{edition.edition_of} is not a story file next to this edition ({original_path} "
                         "does not exist)", file=file, line=line_of(data, ("edition_of",)), field="edition_of")
    original = _mapping(read_text(original_path), original_path, require_panels=True)
    if is_edition(original):
        raise StoryError(f"{edition.edition_of} is an edition too; name the original story", file=file,
                         line=line_of(data, ("edition_of",)), field="edition_of")
    return apply_edition(_validated(original, original_path, True), edition, original_path, file)
