"""The story file's models: what a story is, with every default visible and every value checked."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from storyboard.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from storyboard.story.film import ASPECTS, MAX_DURATION, Animatic, Shot, aspect_size
from storyboard.story.hints import did_you_mean

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
MAX_SEED = 2**64 - 1
# Limits no real story reaches, checked when the file is read, so that a hostile one costs nothing to refuse.
MAX_PANELS = 1000
MAX_TITLE = 300  # a title, a chapter's title
MAX_NAME = 100  # a character's name, a speaker's
MAX_BUBBLE = 1000  # one speech bubble
MAX_TEXT = 2000  # a caption, a narration, a character's description or framing
MAX_PROMPT = 4000  # a panel's prompt, the style's prefix and negative prompt
MAX_OUTLINE = 100_000
MAX_CHARACTERS = 200
LANGUAGE_CODE = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"  # en, zh, pt-BR, zh_Hant


def is_language_code(code: str) -> bool:
    return len(code) <= 35 and re.fullmatch(LANGUAGE_CODE, code) is not None


def name_problem(name: str) -> str:
    """What is wrong with a character's name ('' when nothing): it names files, the cast strip and speakers."""
    if not name.strip():
        return "must not be empty"
    if len(name) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters (got {len(name)})"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" for c in name):
        return f"must not hold line breaks or other control characters (got {name!r})"
    return ""
MIN_SIZE, MAX_SIZE = 64, 2048

StrictInt = Annotated[int, Field(strict=True)]


class StoryModel(BaseModel):
    """Base of every story-file model: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FieldProblem(ValueError):
    """A problem a validator finds in another field than the one it validates (a panel's character that the story
    does not define, a span wider than the page, ...): carries that field's path, so the error names it."""

    def __init__(self, message: str, loc: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.loc = loc


class Style(StoryModel):
    prefix: str = Field("", max_length=MAX_PROMPT, description="Put in front of every panel prompt.")
    negative: str = Field("", max_length=MAX_PROMPT, description="Negative prompt for every panel.")


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

    description: str = Field(max_length=MAX_TEXT,
                             description="What the character looks like; added to every panel that lists it.")
    seed: StrictInt | None = Field(None, description="The anchor's seed (default: derived from render.seed and "
                                                     "the name, see `anchor_seed`).")
    anchor: str = Field(DEFAULT_ANCHOR, max_length=MAX_TEXT, description="How the anchor portrait is framed.")
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
    aspect: Literal["16:9", "2.39:1", "1.85:1", "4:3", "1:1", "9:16"] | None = Field(
        None, description="The frame's shape: sets width and height for the model family (about its native pixel "
                          "count); an explicit width or height wins.")
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
        "auto", description="auto: float16 on a GPU; on the CPU bfloat16 where it computes it natively (AVX512-BF16 "
                            "or AMX), else float32.")
    attention_slicing: StrictBool = Field(False, description="Less VRAM, a little slower.")
    vae: str | None = Field(None, min_length=1,
                            description="The autoencoder that turns latents into pixels: unset, the model's own; "
                                        "tiny, the tiny one made for its family (TAESD...), fast drafts with less "
                                        "detail; or a hub id or local folder holding a diffusers autoencoder.")
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
    renderer: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_]*$",
        description="The renderer to draw with when the command line names none: diffusers, draft, openvino, "
                    "dashscope, a1111 or comfyui.")
    workflow: str | None = Field(
        None, min_length=1, description="For the comfyui renderer: your ComfyUI graph in API format (\"Save (API)\"), "
                                        "a path relative to the story file; default: a built-in txt2img graph.")
    anchor_workflow: str | None = Field(
        None, min_length=1, description="For the comfyui renderer: the graph that draws the characters' anchors, "
                                        "a path relative to the story file; default: the built-in txt2img graph.")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("preset") in PRESETS:
            return {**PRESETS[value["preset"]], **value}
        return value

    @model_validator(mode="before")
    @classmethod
    def _aspect(cls, value: Any) -> Any:
        """Width and height from `aspect`, for the model's family; a width or height given wins, and both given
        must have the aspect's shape."""
        if not isinstance(value, dict) or not isinstance(value.get("aspect"), str) or value["aspect"] not in ASPECTS:
            return value
        aspect, width, height = value["aspect"], value.get("width"), value.get("height")
        model = value.get("model") if isinstance(value.get("model"), str) else DEFAULT_MODEL
        ratio = ASPECTS[aspect]
        if isinstance(width, int) and isinstance(height, int):
            if height and abs(width / height - ratio) > 0.02 * ratio:
                raise FieldProblem(f"width {width} and height {height} are {width / height:.2f}:1, not {aspect}; "
                                   "give one of them, or neither", ("render", "aspect"))
            return value
        if isinstance(width, int):
            return {**value, "height": max(8, round(width / ratio / 8) * 8)}
        if isinstance(height, int):
            return {**value, "width": max(8, round(height * ratio / 8) * 8)}
        width, height = aspect_size(aspect, model)
        return {**value, "width": width, "height": height}

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str) -> str:
        if value not in SCHEDULERS:
            hint = did_you_mean(value, list(SCHEDULERS))
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
        options = {"scheduler": self.scheduler, "config": self.config, "safety_checker": self.safety_checker,
                   "attention_slicing": self.attention_slicing, "vae_tiling": self.vae_tiling}
        if self.vae is not None:  # only when set: the keys of stories that leave it alone stay what they were
            options["vae"] = self.vae
        return options

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
    page: Literal["auto", "a4", "square", "strip", "webtoon"] = Field(
        "auto", description="auto: as wide as the panels need; a4 portrait; square; strip: a narrow web strip; "
                            "webtoon: one column of full-width panels, written as 800 px slices for phones.")
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

    speaker: str = Field("", max_length=MAX_NAME)
    text: str = Field(max_length=MAX_BUBBLE)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty: a speech bubble needs text")
        return value


class Panel(StoryModel):
    prompt: str = Field(max_length=MAX_PROMPT)
    caption: str = Field("", max_length=MAX_TEXT)
    narration: str = Field("", max_length=MAX_TEXT, description="A narration box in the panel's top corner.")
    dialogue: list[Line] = Field(default_factory=list, max_length=MAX_BUBBLES,
                                 description=f"Speech bubbles, at most {MAX_BUBBLES}, in reading order.")
    span: StrictInt = Field(1, ge=1, le=12, description="How many columns the panel spans.")
    characters: list[str] = Field(default_factory=list)
    seed: StrictInt | None = None
    locked: bool = Field(False, description="`storyboard plan` keeps a locked panel exactly as written.")
    page_break: StrictBool = Field(False, description="Start a new page with this panel.")
    chapter: str = Field("", max_length=MAX_TITLE,
                         description="Start a new page with this panel, headed by the chapter's title.")
    # Film grammar (see `storyboard.story.film`); a comic panel leaves it out.
    scene: str = Field("", max_length=MAX_TITLE,
                       description="A scene heading (EXT. SAHARA DESERT - DAY) that starts a new scene here.")
    shot: Shot | None = Field(None, description="The shot: size, angle, move, lens.")
    duration: float | None = Field(None, gt=0, le=MAX_DURATION,
                                   description="Seconds on screen (default: time to read its dialogue, at least 2).")
    action: str = Field("", max_length=MAX_TEXT, description="What happens in the shot (the boards and shot list).")
    notes: str = Field("", max_length=MAX_TEXT, description="Notes for the crew (the boards and shot list).")

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
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    medium: Literal["comic", "film"] = Field(
        "comic", description="film: a 16:9 frame unless render says otherwise, and the planner asks for shots.")
    language: str = Field("en", max_length=35, pattern=LANGUAGE_CODE)
    outline: str = Field("", max_length=MAX_OUTLINE)
    style: Style = Field(default_factory=Style)
    characters: dict[str, Character] = Field(default_factory=dict, max_length=MAX_CHARACTERS)
    render: Render = Field(default_factory=Render)
    layout: Layout = Field(default_factory=Layout)
    planned_by: PlannedBy | None = None
    animatic: Animatic = Field(default_factory=Animatic, description="How `storyboard export` plays the boards.")
    panels: list[Panel] = Field(min_length=1, max_length=MAX_PANELS)

    @model_validator(mode="before")
    @classmethod
    def _film_frame(cls, value: Any) -> Any:
        """A film is framed 16:9 unless its render section gives an aspect, a width or a height."""
        if not isinstance(value, dict) or value.get("medium") != "film":
            return value
        render = value.get("render")
        if render is None:
            render = {}
        if isinstance(render, dict) and not {"aspect", "width", "height"} & set(render):
            return {**value, "render": {**render, "aspect": "16:9"}}
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("characters")
    @classmethod
    def _names(cls, value: dict[str, Character]) -> dict[str, Character]:
        for name in value:
            problem = name_problem(name)
            if problem:
                raise FieldProblem(f"a character's name {problem}", ("characters",))
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Story:
        for i, panel in enumerate(self.panels):
            for j, name in enumerate(panel.characters):
                if name not in self.characters:
                    defined = ", ".join(repr(n) for n in self.characters) or "none"
                    hint = did_you_mean(name, list(self.characters))
                    raise FieldProblem(
                        f"character {name!r} is not defined under 'characters'{hint} (defined: {defined})",
                        ("panels", i, "characters", j),
                    )
        for i, panel in enumerate(self.panels):
            if panel.span > self.layout.columns and self.layout.page != "webtoon":  # a webtoon has one column
                raise FieldProblem(
                    f"span {panel.span} is wider than the page's {self.layout.columns} column"
                    f"{'s' if self.layout.columns > 1 else ''} (layout.columns)", ("panels", i, "span"))
            if panel.narration.strip() and len(panel.dialogue) >= MAX_BUBBLES:
                raise FieldProblem(
                    f"a panel with narration has room for {MAX_BUBBLES - 1} speech bubbles "
                    f"(got {len(panel.dialogue)})", ("panels", i, "dialogue"))
        if self.render.consistency == "ip_adapter" and not self.render.ip_adapter:
            raise FieldProblem("consistency: ip_adapter needs render.ip_adapter: the IP-Adapter weights "
                                     "(e.g. h94/IP-Adapter/models/ip-adapter_sd15.safetensors or a local file)",
                                     ("render", "ip_adapter"))
        last = self.render.seed + len(self.panels) - 1
        if last > MAX_SEED:
            raise FieldProblem(f"seed + number of panels - 1 must stay at most {MAX_SEED}", ("render", "seed"))
        return self


    def descriptions(self) -> dict[str, str]:
        """Each character's visual description, by name."""
        return {name: character.description for name, character in self.characters.items()}


class StoryDraft(Story):
    """A story that may have no panels yet: what `storyboard plan` starts from. Every other field is as strict."""

    panels: list[Panel] = Field(default_factory=list, max_length=MAX_PANELS)

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
