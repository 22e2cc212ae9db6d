"""Score a built page: do the panels of a character look like the same character, and does each panel show its prompt?

CLIP-I is the cosine similarity of two images' embeddings: between every pair of panels that list a character, and
between each such panel and the character's anchor portrait when the build has one. CLIP-T is the cosine of a
panel's image embedding and its final prompt's text embedding. Both are raw cosines, not "CLIPScore" (100 times the
cosine).

The embedding model is a CLIP (or, for CLIP-I only, a DINOv2) loaded through transformers from a local folder or
the Hugging Face cache. Everything that can be wrong with the build folder is found before torch is imported.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from storyboard.errors import CheckError, ModelNotFound
from storyboard.hub import cached_snapshot, first_line, hub_cache_dir, hub_offline, looks_local, quiet_libraries

DEFAULT_CHECK_MODEL = "openai/clip-vit-base-patch32"
DIGITS = 4  # scores are rounded to this many places, in the table, in --json and for --min alike

@dataclass(frozen=True)
class CharacterScore:
    """CLIP-I of one character: between the panels that list it, and between those panels and its anchor."""

    name: str
    panels: tuple[int, ...]  # the panels that list it
    pairs: int = 0  # panel pairs scored: n·(n-1)/2
    pair_mean: float | None = None
    pair_min: float | None = None
    anchor: str | None = None  # its anchor portrait, relative to the build folder
    anchor_mean: float | None = None
    anchor_min: float | None = None

    @property
    def score(self) -> float | None:
        """What `--min` judges: the panel-pair mean; for a character in one panel, the panel-vs-anchor mean."""
        return self.pair_mean if self.pairs else self.anchor_mean

    @property
    def score_from(self) -> str | None:
        if self.pairs:
            return "pairs"
        return "anchor" if self.anchor_mean is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "panels": list(self.panels), "pairs": self.pairs, "pair_mean": self.pair_mean,
                "pair_min": self.pair_min, "anchor": self.anchor, "anchor_mean": self.anchor_mean,
                "anchor_min": self.anchor_min, "score": self.score, "score_from": self.score_from}


@dataclass(frozen=True)
class PanelScore:
    """CLIP-T of one panel: how well its image matches its final prompt (None when the model reads no text)."""

    index: int
    file: str
    characters: tuple[str, ...]
    clip_t: float | None
    prompt_tokens: int | None = None  # the prompt's length in the model's tokens
    truncated: bool = False  # the prompt was longer than the model reads; only its start was scored

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "file": self.file, "characters": list(self.characters), "clip_t": self.clip_t,
                "prompt_tokens": self.prompt_tokens, "truncated": self.truncated}


@dataclass(frozen=True)
class CheckReport:
    story: str
    build: str
    model: str
    kind: str  # "clip" or "dinov2"
    max_text_tokens: int | None  # None when the model has no text encoder
    characters: list[CharacterScore] = field(default_factory=list)
    panels: list[PanelScore] = field(default_factory=list)

    @property
    def has_text(self) -> bool:
        return self.max_text_tokens is not None

    def below(self, threshold: float) -> list[CharacterScore]:
        """The characters whose score (see `CharacterScore.score`) is below `threshold`."""
        return [c for c in self.characters if c.score is not None and c.score < threshold]

    def to_dict(self) -> dict[str, Any]:
        return {
            "story": self.story,
            "build": self.build,
            "model": {"name": self.model, "kind": self.kind, "max_text_tokens": self.max_text_tokens},
            "characters": [c.to_dict() for c in self.characters],
            "panels": [p.to_dict() for p in self.panels],
        }

    def table(self) -> str:
        """The report as plain aligned text, readable on a terminal and in a log."""
        lines = [f"{self.build}: {len(self.panels)} panel{'s' if len(self.panels) != 1 else ''}, "
                 f"scored with {self.model} ({'CLIP' if self.kind == 'clip' else 'DINOv2'})", ""]
        lines.append("CLIP-I: cosine similarity of the images of the same character (1 = identical)")
        if self.characters:
            rows = [["character", "panels", "pairs", "mean", "min", "anchor mean", "anchor min"]]
            rows += [[c.name, ",".join(map(str, c.panels)) or "-", str(c.pairs), _number(c.pair_mean),
                      _number(c.pair_min), _number(c.anchor_mean), _number(c.anchor_min)]
                     for c in self.characters]
            lines += _columns(rows, right={2, 3, 4, 5, 6})
        else:
            lines.append("no panel lists a character")
        lines.append("")
        if self.has_text:
            lines.append("CLIP-T: cosine similarity of each panel and its prompt")
            rows = [["panel", "CLIP-T", "characters"]]
            rows += [[str(p.index), _number(p.clip_t) + ("*" if p.truncated else " "), ", ".join(p.characters)]
                     for p in self.panels]
            lines += _columns(rows, right={0, 1})
            if any(p.truncated for p in self.panels):
                lines.append(f"* prompt longer than the model's {self.max_text_tokens} tokens; "
                             f"only its first {self.max_text_tokens} were scored")
        else:
            lines.append(f"CLIP-T: not available: {self.model} is an image-only model ({self.kind})")
        return "\n".join(line.rstrip() for line in lines) + "\n"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.{DIGITS}f}"


def _columns(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(width) if i in right else cell.ljust(width)
                      for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
            for row in rows]


# --------------------------------------------------------------------------- the build folder


@dataclass(frozen=True)
class _Panel:
    index: int
    file: str
    prompt: str
    characters: tuple[str, ...]


@dataclass(frozen=True)
class _Build:
    panels: list[_Panel]
    anchors: dict[str, str]  # character name -> anchor file, relative to the build folder


def read_build(story_path: str | Path, out: Path) -> _Build:
    """The panels (file, final prompt, characters) and anchors of the build in `out`; every file checked to exist.

    A panel entry without `characters` (a build from before anchors existed) takes them from the story file.
    """
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        again = _build_command(story_path, out)
        raise CheckError(f"{out} has no manifest.json; run `{again}` first")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckError(f"{manifest_path}: not a storyboard manifest ({first_line(exc)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("panels"), list) or not data["panels"]:
        raise CheckError(f"{manifest_path}: not a storyboard manifest (no 'panels' list)")

    story_characters: list[list[str]] | None = None
    panels = []
    for position, entry in enumerate(data["panels"]):
        where = f"{manifest_path}: panels[{position}]"
        if not isinstance(entry, dict):
            raise CheckError(f"{where}: not an object")
        index, file, prompt = entry.get("index"), entry.get("file"), entry.get("prompt")
        if not isinstance(index, int) or not isinstance(file, str) or not isinstance(prompt, str):
            raise CheckError(f"{where}: needs 'index' (a number), 'file' and 'prompt' (text)")
        names = entry.get("characters")
        if names is None:
            if story_characters is None:
                from storyboard.story import load_story

                story_characters = [list(p.characters) for p in load_story(story_path).panels]
            names = story_characters[index - 1] if 1 <= index <= len(story_characters) else []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CheckError(f"{where}.characters: must be a list of names")
        panels.append(_Panel(index, file, prompt, tuple(dict.fromkeys(names))))

    anchors: dict[str, str] = {}
    listed = data.get("characters") or []
    if not isinstance(listed, list):
        raise CheckError(f"{manifest_path}: 'characters' must be a list")
    for position, entry in enumerate(listed):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or not isinstance(entry.get("file"), str):
            raise CheckError(f"{manifest_path}: characters[{position}]: needs 'name' and 'file' (text)")
        anchors[entry["name"]] = entry["file"]

    for file in [p.file for p in panels] + list(anchors.values()):
        if not (out / file).is_file():
            raise CheckError(f"{out / file} is missing (listed in {manifest_path}); "
                             f"run `{_build_command(story_path, out)}` again")
    return _Build(panels, anchors)


def _build_command(story_path: str | Path, out: Path) -> str:
    command = f"storyboard build {shlex.quote(str(story_path))}"
    return command if out == _default_out(story_path) else f"{command} --out {shlex.quote(str(out))}"


def _default_out(story_path: str | Path) -> Path:
    from storyboard.output import default_out_dir

    return default_out_dir(story_path)


# --------------------------------------------------------------------------- the embedding model


class Embedder:
    """A CLIP (images and text) or DINOv2 (images only) model, loaded through transformers.

    `model` is a local folder or a hub id. A folder, or a hub id already in the cache, is loaded without touching
    the network; a hub id not in the cache is downloaded unless HF_HUB_OFFLINE is set.
    """

    def __init__(self, model: str = DEFAULT_CHECK_MODEL) -> None:
        self.name = model
        self._local_only, self._cache_dir = _where(model)
        self._load()

    def _load(self) -> None:
        import torch
        from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer, CLIPModel

        options = {"local_files_only": self._local_only, "cache_dir": self._cache_dir}
        try:
            with quiet_libraries(("transformers",)):
                config = AutoConfig.from_pretrained(self.name, **options)
                self.kind = config.model_type
                if self.kind == "clip":
                    self.model = CLIPModel.from_pretrained(self.name, **options)
                    self.tokenizer = AutoTokenizer.from_pretrained(self.name, **options)
                    self.max_tokens: int | None = int(config.text_config.max_position_embeddings)
                elif self.kind == "dinov2":
                    self.model = AutoModel.from_pretrained(self.name, **options)
                    self.tokenizer, self.max_tokens = None, None
                else:
                    raise CheckError(f"model {self.name!r} is a {self.kind} model; check needs a CLIP model "
                                     f"(or DINOv2, for CLIP-I only)")
                self.processor = AutoImageProcessor.from_pretrained(self.name, **options)
        except CheckError:
            raise
        except Exception as exc:
            raise self._load_error(exc) from None
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device).eval()

    def _load_error(self, exc: BaseException) -> ModelNotFound:
        if Path(self.name).expanduser().is_dir():
            return ModelNotFound(f"cannot load the scoring model from {self.name} ({type(exc).__name__}: "
                                 f"{first_line(exc)}); it must be a CLIP or DINOv2 model saved by transformers")
        return ModelNotFound(f"cannot load scoring model {self.name!r} ({type(exc).__name__}: {first_line(exc)}); "
                             f"{_download_hint(self.name)}")

    def images(self, paths: Sequence[Path], batch: int = 16) -> Any:
        """One L2-normalised embedding per image, as rows of a float32 tensor on the CPU."""
        import torch
        from PIL import Image

        rows = []
        for start in range(0, len(paths), batch):
            pictures = []
            for path in paths[start:start + batch]:
                try:
                    with Image.open(path) as image:
                        pictures.append(image.convert("RGB"))
                except (OSError, SyntaxError) as exc:
                    raise CheckError(f"cannot read image {path}: {first_line(exc)}") from None
            pixels = self.processor(images=pictures, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.inference_mode():
                if self.kind == "clip":
                    features = self.model.get_image_features(pixel_values=pixels)
                else:
                    features = self.model(pixel_values=pixels)
            rows.append(_pooled(features))
        return torch.nn.functional.normalize(torch.cat(rows).float().cpu(), dim=-1)

    def texts(self, prompts: Sequence[str]) -> tuple[Any, list[int]]:
        """L2-normalised text embeddings, and each prompt's length in tokens before truncation to `max_tokens`."""
        import torch

        # Not "sequence longer than the maximum": truncating is what we mean, and we report it.
        with quiet_libraries(("transformers",)):
            lengths = [len(ids) for ids in self.tokenizer(list(prompts))["input_ids"]]
            tokens = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=self.max_tokens,
                                    return_tensors="pt").to(self.device)
        with torch.inference_mode():
            features = self.model.get_text_features(input_ids=tokens["input_ids"],
                                                    attention_mask=tokens["attention_mask"])
        return torch.nn.functional.normalize(_pooled(features).float().cpu(), dim=-1), lengths



def _pooled(features: Any) -> Any:
    """The embedding from what a model returned: a tensor (transformers 4's get_*_features) or an output object
    whose pooler_output holds it (transformers 5; DINOv2's layer-normed CLS token)."""
    return features if hasattr(features, "shape") else features.pooler_output


def _where(model: str) -> tuple[bool, str | None]:
    """(load without the network?, hub cache folder) for `model`, checked before torch is imported."""
    path = Path(model).expanduser()
    if path.is_dir():
        return True, None
    if path.exists():
        raise ModelNotFound(f"scoring model {model!r} is a file; pass a folder holding a transformers CLIP model "
                            f"(config.json, weights, tokenizer and preprocessor files) or a hub id")
    if looks_local(model):
        raise ModelNotFound(f"scoring model {model!r} not found: no such folder ({path.resolve()}); "
                            f"pass a CLIP model folder or a hub id such as {DEFAULT_CHECK_MODEL}")
    cache = hub_cache_dir()
    cached = cached_snapshot(model, "config.json") is not None
    if not cached and hub_offline():
        raise ModelNotFound(f"scoring model {model!r} is not in the Hugging Face cache ({cache}) and "
                            f"HF_HUB_OFFLINE=1 forbids downloading it; {_download_hint(model)}")
    return cached, str(cache)


def _download_hint(model: str) -> str:
    return (f"download it once with `hf download {model}` (`storyboard download` fetches only Stable Diffusion "
            f"pipelines), or pass a local CLIP folder with --model")


# --------------------------------------------------------------------------- the scores


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(math.fsum(values) / len(values), DIGITS), round(min(values), DIGITS)


def check(story_path: str | Path, out_dir: str | Path | None = None, *, model: str = DEFAULT_CHECK_MODEL,
          embedder: Embedder | None = None) -> CheckReport:
    """Score the page built from `story_path` in `out_dir` (default ``build/<stem>``) with a CLIP model.

    Reads ``manifest.json`` for each panel's image, final prompt and characters (from the story file when the
    manifest does not list them) and each character's anchor portrait. `embedder` is an already loaded model to
    reuse; otherwise `model` (a folder or hub id) is loaded.
    """
    out = Path(out_dir) if out_dir is not None else _default_out(story_path)
    built = read_build(story_path, out)
    embedder = embedder or Embedder(model)

    files = list(dict.fromkeys([p.file for p in built.panels] + list(built.anchors.values())))
    vectors = embedder.images([out / f for f in files])
    row = {f: i for i, f in enumerate(files)}

    def similarity(a: str, b: str) -> float:
        return float(vectors[row[a]] @ vectors[row[b]])

    names = list(built.anchors)
    names += [n for p in built.panels for n in p.characters if n not in names]
    names = list(dict.fromkeys(names))
    characters = []
    for name in names:
        listing = [p for p in built.panels if name in p.characters]
        pairs = [similarity(a.file, b.file) for a, b in combinations(listing, 2)]
        anchor = built.anchors.get(name)
        to_anchor = [similarity(p.file, anchor) for p in listing] if anchor else []
        characters.append(CharacterScore(name, tuple(p.index for p in listing), len(pairs), *_stats(pairs),
                                         anchor, *_stats(to_anchor)))

    panels = []
    if embedder.max_tokens is not None:
        texts, lengths = embedder.texts([p.prompt for p in built.panels])
        for position, p in enumerate(built.panels):
            score = round(float(vectors[row[p.file]] @ texts[position]), DIGITS)
            panels.append(PanelScore(p.index, p.file, p.characters, score, lengths[position],
                                     lengths[position] > embedder.max_tokens))
    else:
        panels = [PanelScore(p.index, p.file, p.characters, None) for p in built.panels]
    return CheckReport(str(story_path), str(out), embedder.name, embedder.kind, embedder.max_tokens, characters,
                       panels)
