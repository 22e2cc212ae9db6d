"""The story file: its pydantic models, and a strict loader whose errors name file, line and field."""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from storyboard.errors import StoryError
from storyboard.schedulers import DEFAULT_SCHEDULER, SCHEDULERS

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
MAX_SEED = 2**64 - 1
MIN_SIZE, MAX_SIZE = 64, 2048

# Limits that keep hostile files (alias bombs, absurd nesting, huge files) cheap to reject.
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_VALUES = 100_000
MAX_DEPTH = 50

StrictInt = Annotated[int, Field(strict=True)]


class StoryModel(BaseModel):
    """Base of every story-file model: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class UndefinedCharacter(ValueError):
    """A panel lists a character that the story does not define; carries the field path."""

    def __init__(self, message: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.loc = loc


class Style(StoryModel):
    prefix: str = Field("", description="Put in front of every panel prompt.")
    negative: str = Field("", description="Negative prompt for every panel.")


class Lora(StoryModel):
    """A LoRA: a local `.safetensors` file, or a hub id (with `weight_name` when it holds more than one file)."""

    path: str = Field(min_length=1, description="A local .safetensors file or a Hugging Face hub id.")
    weight: float = Field(1.0, ge=-10, le=10, description="How strongly it applies (1.0 as trained).")
    weight_name: str | None = Field(None, min_length=1,
                                    description="For a hub id: the file in the repository to use.")


DEFAULT_ANCHOR = "full body, front view, standing, plain light background"


class Character(StoryModel):
    """A character: its visual description, and the anchor portrait that panels listing it read.

    The plain form ``name: "description"`` is the same as ``name: {description: "..."}``.
    """

    description: str = Field(description="What the character looks like; added to every panel that lists it.")
    seed: StrictInt | None = Field(None, description="The anchor's seed (default: derived from render.seed and "
                                                     "the name, see `anchor_seed`).")
    anchor: str = Field(DEFAULT_ANCHOR, description="How the anchor portrait is framed.")
    image: str | None = Field(None, min_length=1, description="Your own reference picture (a path relative to "
                                                              "the story file) instead of a drawn anchor.")
    lora: str | None = Field(None, min_length=1, description="A LoRA of this character (local .safetensors file "
                                                             "or hub id), applied only to panels that list them "
                                                             "and to their anchor.")
    lora_weight: float = Field(1.0, ge=-10, le=10, description="How strongly the character's LoRA applies.")

    @model_validator(mode="before")
    @classmethod
    def _plain_form(cls, value: Any) -> Any:
        return {"description": value} if isinstance(value, str) else value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | None) -> int | None:
        return None if value is None else _check_seed(value)

    def lora_spec(self) -> Lora | None:
        return Lora(path=self.lora, weight=self.lora_weight) if self.lora else None


#: What `render.preset` sets, unless the story sets the field itself. Few-step models draw in 1-8 steps with
#: little or no classifier-free guidance; the full-step defaults would waste minutes and burn the picture.
PRESETS: dict[str, dict[str, Any]] = {
    # SD-Turbo / SDXL-Turbo: adversarially distilled, no guidance (so no negative prompt), 1-4 steps.
    "turbo": {"steps": 4, "guidance": 0.0, "scheduler": "euler_a"},
    # LCM models and LCM-LoRAs: the LCM scheduler, 4-8 steps, guidance 1-2 (1 turns it off).
    "lcm": {"steps": 4, "guidance": 1.0, "scheduler": "lcm"},
}


class Render(StoryModel):
    preset: Literal["turbo", "lcm"] | None = Field(
        None, description="Few-step models: turbo (SD-Turbo, SDXL-Turbo) or lcm (LCM models, LCM-LoRAs) set steps, "
                          "guidance and scheduler; fields set in the story win.")
    model: str = Field(DEFAULT_MODEL, min_length=1,
                       description="Hugging Face hub id, local diffusers folder or checkpoint file.")
    width: StrictInt = 512
    height: StrictInt = 512
    steps: StrictInt = Field(25, ge=1, le=500)
    guidance: float = Field(7.5, ge=0, le=50)
    seed: StrictInt = Field(1234, description="Panel i (1-based) uses seed + i - 1 unless it sets its own.")
    scheduler: str = Field(DEFAULT_SCHEDULER, description="Sampler by its usual name: euler_a, dpmpp_2m_karras, "
                                                          "ddim...; 'default' keeps the model's own.")
    config: str | None = Field(None, min_length=1,
                               description="For a single-file checkpoint: a diffusers folder or hub id whose "
                                           "configs describe it (needed offline).")
    safety_checker: StrictBool = Field(True, description="Run the safety checker the model ships (if any).")
    device: str = Field("auto", description="auto picks CUDA, then Apple MPS, then CPU; or cpu, mps, cuda, cuda:1...")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        "auto", description="auto: float16 on a GPU, float32 on the CPU.")
    attention_slicing: StrictBool = Field(False, description="Less VRAM, a little slower.")
    vae_tiling: StrictBool = Field(False, description="Decode the image in tiles: large images on small GPUs.")
    vae_slicing: StrictBool = Field(False, description="Decode one image at a time.")
    cpu_offload: StrictBool = Field(False, description="Keep each model part on the CPU until it is needed "
                                                       "(needs the accelerate package; 6-8 GB GPUs).")
    loras: list[Lora] = Field(default_factory=list, description="LoRAs applied to every panel.")

    consistency: Literal["reference", "ip_adapter", "none"] = Field(
        "reference", description="How a panel that lists characters reads their anchor portraits: reference "
                                 "(its self-attention also attends to the anchors'), ip_adapter (the anchors as "
                                 "image prompts; needs render.ip_adapter) or none.")
    consistency_strength: float = Field(
        0.5, ge=0, le=1, description="How strongly panels follow their anchors: 0 ignores them, 1 weighs an "
                                     "anchor's tokens like the panel's own.")
    ip_adapter: str | None = Field(
        None, min_length=1, description="IP-Adapter weights for consistency: ip_adapter: a hub path "
                                        "(h94/IP-Adapter/models/ip-adapter_sd15.safetensors) or a local file.")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("preset") in PRESETS:
            return {**PRESETS[value["preset"]], **value}
        return value

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str) -> str:
        if value not in SCHEDULERS:
            hint = _did_you_mean(value, list(SCHEDULERS))
            raise ValueError(f"unknown scheduler {value!r}{hint}; choose from: {', '.join(SCHEDULERS)}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"unknown device {value!r}; use auto, cpu, mps, cuda or cuda:N")
        return value

    def pixel_options(self) -> dict[str, Any]:
        """Renderer settings that change the pixels, so they belong in every panel's cache key."""
        return {"scheduler": self.scheduler, "config": self.config, "safety_checker": self.safety_checker,
                "attention_slicing": self.attention_slicing, "vae_tiling": self.vae_tiling}

    def loras_for(self, characters: list[Character]) -> list[dict[str, Any]]:
        """The LoRAs a panel showing `characters` is drawn with: the story's, then each character's."""
        specs = [*self.loras, *(c.lora_spec() for c in characters if c.lora)]
        return [spec.model_dump(exclude_none=True) for spec in specs if spec is not None]

    def consistency_options(self) -> dict[str, Any]:
        """Settings that change the pixels of panels that read anchors, and only of those."""
        options: dict[str, Any] = {"consistency": self.consistency,
                                   "consistency_strength": self.consistency_strength}
        if self.consistency == "ip_adapter":
            options["ip_adapter"] = self.ip_adapter
        return options

    def runtime_options(self) -> dict[str, Any]:
        """Where and how to run; the renderer adds the device class and dtype these resolve to to its identity."""
        return {"device": self.device, "dtype": self.dtype, "vae_slicing": self.vae_slicing,
                "cpu_offload": self.cpu_offload,
                # A flow-matching model (FLUX, SD3) keeps its own scheduler unless the story chose one.
                "scheduler_chosen": "scheduler" in self.model_fields_set}

    @field_validator("width", "height")
    @classmethod
    def _size(cls, value: int) -> int:
        if value % 8 or not MIN_SIZE <= value <= MAX_SIZE:
            raise ValueError(f"must be a multiple of 8 between {MIN_SIZE} and {MAX_SIZE} (got {value})")
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int) -> int:
        return _check_seed(value)


class Layout(StoryModel):
    columns: StrictInt = Field(4, ge=1, le=12)
    rows: StrictInt | None = Field(None, ge=1, le=50, description="Rows per page; with columns, panels per page. "
                                                                  "Default: every panel on one page.")
    direction: Literal["ltr", "rtl"] = Field("ltr", description="Reading order of panels: rtl reads right to left.")
    page: Literal["auto", "a4", "square", "strip"] = Field(
        "auto", description="auto: as wide as the panels need; a4 portrait; square; strip: a narrow web strip.")
    gutter: StrictInt = Field(32, ge=0, le=400, description="Space between panels, in pixels at render size.")
    margin: StrictInt = Field(48, ge=0, le=800, description="Space around the page, in pixels at render size.")
    border: StrictInt = Field(3, ge=0, le=40, description="Panel border width in pixels; 0 for none.")
    background: str = Field("#ffffff", description="Page colour as #rrggbb.")
    captions: Literal["below", "above", "overlay"] = Field("below", description="Where captions go.")
    footer: bool = Field(True, description="Show a footer with the credits and the model used.")
    credits: str = Field("", description="Text for the footer, e.g. 'Story: A. Writer · Art: storyboard'.")
    cast: StrictBool = Field(True, description="Show the characters' portraits under the title of the first page, "
                                               "when the build has them.")

    def page_key_input(self) -> dict[str, Any]:
        """The layout as the page key reads it: fields left at their defaults since they were added are left
        out, so that adding them did not change the key (and recompose the page) of any existing story."""
        data = self.model_dump()
        for name, default in (("rows", None), ("cast", True)):
            if data[name] == default:
                del data[name]
        return data

    @field_validator("background")
    @classmethod
    def _colour(cls, value: str) -> str:
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", value):
            raise ValueError(f"expected a colour like '#ffffff', got {value!r}")
        return value.lower()


MAX_BUBBLES = 4


class Line(StoryModel):
    """One speech bubble: who speaks, and what they say."""

    speaker: str = ""
    text: str

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty: a speech bubble needs text")
        return value


class Panel(StoryModel):
    prompt: str
    caption: str = ""
    narration: str = Field("", description="A narration box in the panel's top corner.")
    dialogue: list[Line] = Field(default_factory=list, max_length=MAX_BUBBLES,
                                 description=f"Speech bubbles, at most {MAX_BUBBLES}, in reading order.")
    span: StrictInt = Field(1, ge=1, le=12, description="How many columns the panel spans.")
    characters: list[str] = Field(default_factory=list)
    seed: StrictInt | None = None
    locked: bool = Field(False, description="`storyboard plan` keeps a locked panel exactly as written.")
    page_break: StrictBool = Field(False, description="Start a new page with this panel.")
    chapter: str = Field("", description="Start a new page with this panel, headed by the chapter's title.")

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty: describe what the panel shows")
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | None) -> int | None:
        return None if value is None else _check_seed(value)


class PlannedBy(StoryModel):
    """Which LLM wrote the panels (`storyboard plan` sets it)."""

    provider: str
    model: str


class Story(StoryModel):
    title: str = Field(min_length=1)
    language: str = Field("en", pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
    outline: str = ""
    style: Style = Field(default_factory=Style)
    characters: dict[str, Character] = Field(default_factory=dict)
    render: Render = Field(default_factory=Render)
    layout: Layout = Field(default_factory=Layout)
    planned_by: PlannedBy | None = None
    panels: list[Panel] = Field(min_length=1)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Story:
        for i, panel in enumerate(self.panels):
            for j, name in enumerate(panel.characters):
                if name not in self.characters:
                    defined = ", ".join(repr(n) for n in self.characters) or "none"
                    hint = _did_you_mean(name, list(self.characters))
                    raise UndefinedCharacter(
                        f"character {name!r} is not defined under 'characters'{hint} (defined: {defined})",
                        ("panels", i, "characters", j),
                    )
        for i, panel in enumerate(self.panels):
            if panel.span > self.layout.columns:
                raise UndefinedCharacter(
                    f"span {panel.span} is wider than the page's {self.layout.columns} column"
                    f"{'s' if self.layout.columns > 1 else ''} (layout.columns)", ("panels", i, "span"))
            if panel.narration.strip() and len(panel.dialogue) >= MAX_BUBBLES:
                raise UndefinedCharacter(
                    f"a panel with narration has room for {MAX_BUBBLES - 1} speech bubbles "
                    f"(got {len(panel.dialogue)})", ("panels", i, "dialogue"))
        if self.render.consistency == "ip_adapter" and not self.render.ip_adapter:
            raise UndefinedCharacter("consistency: ip_adapter needs render.ip_adapter: the IP-Adapter weights "
                                     "(e.g. h94/IP-Adapter/models/ip-adapter_sd15.safetensors or a local file)",
                                     ("render", "ip_adapter"))
        last = self.render.seed + len(self.panels) - 1
        if last > MAX_SEED:
            raise UndefinedCharacter(f"seed + number of panels - 1 must stay at most {MAX_SEED}", ("render", "seed"))
        return self


    def descriptions(self) -> dict[str, str]:
        """Each character's visual description, by name."""
        return {name: character.description for name, character in self.characters.items()}


class StoryDraft(Story):
    """A story that may have no panels yet: what `storyboard plan` starts from. Every other field is as strict."""

    panels: list[Panel] = Field(default_factory=list)

    @field_validator("panels", mode="before")
    @classmethod
    def _no_panels_yet(cls, value: Any) -> Any:
        return [] if value is None else value  # a bare `panels:` line waiting to be planned


def _check_seed(value: int) -> int:
    if value < 0:
        raise ValueError(f"must be 0 or more (got {value}); storyboard always uses fixed seeds")
    if value > MAX_SEED:
        raise ValueError(f"must be at most {MAX_SEED} (got {value})")
    return value


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == word.lower()]
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- reading YAML


def read_text(path: str | Path) -> str:
    """Read a story file as UTF-8 text, with errors a user can act on."""
    return _decode(_read_bytes(path), path)


def _read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    try:
        if path.is_dir():
            raise StoryError("is a folder, not a story file", file=path)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise StoryError(f"is {size // 1024} KiB; a story file is at most {MAX_FILE_BYTES // 1024} KiB", file=path)
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # a device such as /dev/zero has no size and never ends
        if len(data) > MAX_FILE_BYTES:
            raise StoryError(f"is more than {MAX_FILE_BYTES // 1024} KiB; a story file is at most "
                             f"{MAX_FILE_BYTES // 1024} KiB", file=path)
    except FileNotFoundError:
        raise StoryError("no such file", file=path) from None
    except PermissionError:
        raise StoryError("permission denied", file=path) from None
    except OSError as exc:
        raise StoryError(f"cannot read: {exc.strerror or exc}", file=path) from None
    return data


def _decode(data: bytes, path: str | Path) -> str:
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
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise StoryError(f"invalid YAML: {problem}", file=file, line=mark.line + 1 if mark else None) from None
    except YAMLError as exc:
        raise StoryError(f"invalid YAML: {' '.join(str(exc).split())}", file=file) from None
    except RecursionError:
        raise StoryError(f"YAML nested too deeply (more than {MAX_DEPTH} levels)", file=file) from None
    _check_size(data, file)
    return data


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
    """Validate story YAML text. With `require_panels=False` a story without panels passes (as a `StoryDraft`)."""
    needs = "'title' and 'panels'" if require_panels else "'title'"
    if not text.strip():
        raise StoryError(f"the file is empty; a story needs at least {needs}", file=file)
    data = parse_yaml(text, file)
    if data is None:
        raise StoryError(f"the file holds no YAML values; a story needs at least {needs}", file=file)
    if not isinstance(data, dict):
        raise StoryError(f"expected a mapping of story fields (title:, panels:, ...), got {_kind(data)}",
                         file=file, line=1)
    try:
        return (Story if require_panels else StoryDraft).model_validate(data)
    except ValidationError as exc:
        raise _story_error(exc, data, file) from None


# --------------------------------------------------------------------------- error messages


def _story_error(exc: ValidationError, data: Any, file: str | Path | None) -> StoryError:
    # An unknown key is usually a misspelt one, which also explains a "missing" error beside it: report it first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, UndefinedCharacter):
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
        hint = _did_you_mean(str(loc[-1]), fields)
        return f"unknown field{hint}" if hint else f"unknown field (allowed: {', '.join(fields)})"
    if kind == "missing":
        return "required field is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of fields, got {_kind(value)}"
    if kind == "list_type":
        return f"expected a list, got {_kind(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {_kind(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_kind(value)}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {_kind(value)}"
    if kind == "string_type":
        return f"expected text, got {_kind(value)} (put quotes around it)"
    if kind == "too_short" and loc == ("panels",):
        return "a story needs at least one panel"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_pattern_mismatch" and loc == ("language",):
        return f"expected a language code such as 'en', 'zh' or 'pt-BR', got {value!r}"
    if kind == "too_long" and loc and loc[-1] == "dialogue":
        return f"at most {MAX_BUBBLES} speech bubbles fit in a panel (got {len(value)}); split the scene"
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}, got {_kind(value)}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{error['msg'].lower()} (got {value})"
    return error["msg"][0].lower() + error["msg"][1:]


def _kind(value: Any) -> str:
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


# --------------------------------------------------------------------------- writing back


def load_document(path: str | Path, *, require_panels: bool = True) -> Any:
    """The story file as ruamel round-trip objects, for edits that keep comments, order, quoting and indentation.

    The file is validated first (see `story_from_yaml`), so callers only ever edit a valid story; `story_of` gives
    that validated story. Pass the result to `save_document`.
    """
    data = _read_bytes(path)
    text = _decode(data, path)
    story = story_from_yaml(text, file=path, require_panels=require_panels)
    # ruamel round-trips CRLF text badly (blank lines lost, "\r" kept in comments) and writes "\n" and no BOM:
    # it edits the "\n" text, and a rewrite restores the file's own line endings and BOM.
    document = parse_yaml(text.replace("\r\n", "\n"), path)
    document._storyboard_indent = _guess_indent(text)
    document._storyboard_newline = "\r\n" if "\r\n" in text else "\n"
    document._storyboard_bom = data.startswith(b"\xef\xbb\xbf")
    document._storyboard_story = story
    return document


def story_of(document: Any) -> Story:
    """The story `load_document` validated when it read `document` (a `StoryDraft` if panels were optional)."""
    return document._storyboard_story


def _guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) indentation as written in `text`, so a rewrite keeps the user's layout."""
    mapping, offset = None, None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for parent, child in zip(lines, lines[1:]):
        if not parent.rstrip().endswith(":") or parent.lstrip().startswith("- "):
            continue
        step = (len(child) - len(child.lstrip())) - (len(parent) - len(parent.lstrip()))
        if child.lstrip().startswith("- "):
            offset = step if offset is None and step >= 0 else offset
        elif step > 0 and mapping is None:
            mapping = step
    mapping = mapping or 2
    offset = 2 if offset is None else offset
    return mapping, offset + 2, offset


def dump_document(document: Any) -> str:
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.width = 1_000_000  # never re-wrap long prompts
    yaml.preserve_quotes = True
    mapping, sequence, offset = getattr(document, "_storyboard_indent", (2, 4, 2))
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    text = buffer.getvalue()
    if getattr(document, "_storyboard_newline", "\n") == "\r\n":
        text = text.replace("\n", "\r\n")
    return ("\ufeff" if getattr(document, "_storyboard_bom", False) else "") + text


def save_document(path: str | Path, document: Any) -> Story:
    """Validate `document` as a story and write it to `path` atomically; return the validated Story."""
    from storyboard.files import atomic_write_text

    text = dump_document(document)
    story = story_from_yaml(text, file=path)
    atomic_write_text(path, text)
    return story
