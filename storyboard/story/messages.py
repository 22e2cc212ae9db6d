"""The one-line messages of a story that does not validate: what is wrong, in words a writer reads, with the file,
line and field path of the problem."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from storyboard.errors import StoryError
from storyboard.story.hints import did_you_mean
from storyboard.story.models import MAX_BUBBLES, FieldProblem, Story


def story_error(exc: ValidationError, data: Any, file: str | Path | None) -> StoryError:
    # An unknown key is usually a misspelt one, which also explains a "missing" error beside it: report it first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, FieldProblem):
        loc, message = ctx_error.loc, str(ctx_error)
    else:
        message = _message(first, loc)
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return StoryError(message, file=file, line=_line_of(data, loc), field=_path(loc) or None)


def _message(error: dict[str, Any], loc: tuple[str | int, ...]) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        fields = list(model.model_fields) if model else []
        hint = did_you_mean(str(loc[-1]), fields)
        return f"unknown field{hint}" if hint else f"unknown field (allowed: {', '.join(fields)})"
    if kind == "missing":
        return "required field is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of fields, got {describe(value)}"
    if kind == "list_type":
        return f"expected a list, got {describe(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {describe(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {describe(value)}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {describe(value)}"
    if kind == "string_type":
        return f"expected text, got {describe(value)} (put quotes around it)"
    if kind == "too_short" and loc == ("panels",):
        return "a story needs at least one panel"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {error['ctx']['max_length']} characters (got {len(value)})"
    if kind == "too_long" and loc == ("panels",):
        return f"a story has at most {error['ctx']['max_length']} panels (got {len(value)})"
    if kind == "too_long" and loc == ("characters",):
        return f"a story has at most {error['ctx']['max_length']} characters (got {len(value)})"
    if kind == "string_pattern_mismatch" and loc == ("language",):
        return f"expected a language code such as 'en', 'zh' or 'pt-BR', got {value!r}"
    if kind == "too_long" and loc and loc[-1] == "dialogue":
        return f"at most {MAX_BUBBLES} speech bubbles fit in a panel (got {len(value)}); split the scene"
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}, got {describe(value)}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{error['msg'].lower()} (got {value})"
    return error["msg"][0].lower() + error["msg"][1:]


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"a whole number ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"text ({shown!r})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _line_of(data: Any, loc: tuple[str | int, ...]) -> int | None:
    """The 1-based line of the deepest part of `loc` present in the parsed YAML."""
    line = None
    node = data
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(node, dict) and part in node:
                line = lc.key(part)[0] + 1 if lc is not None else line
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                line = lc.item(part)[0] + 1 if lc is not None else line
                node = node[part]
            else:
                if line is None and lc is not None:
                    line = lc.line + 1
                break
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    return line


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `loc` (for 'did you mean' hints)."""
    annotation: Any = Story
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            annotation = args[0] if args else None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            annotation = field.annotation if field else None
        else:
            return None
    annotation = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] / X | None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def line_of(data: Any, loc: tuple[str | int, ...]) -> int | None:
    """The line of the value at `loc` in parsed YAML `data`."""
    return _line_of(data, loc)


def field_path(loc: tuple[str | int, ...]) -> str:
    """`loc` as an error names a field: panels[2].caption."""
    return _path(loc)
