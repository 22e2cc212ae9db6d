"""How a panel image was made, written into the PNG itself and read back by `storyboard info`.

Every panel PNG carries two text chunks:

- ``parameters``: the generation parameters in the format of the AUTOMATIC1111 web UI, which A1111, ComfyUI
  loaders, Civitai, image browsers and exif tools already read::

      <final prompt>
      Negative prompt: <negative prompt>
      Steps: 25, Sampler: Euler a, CFG scale: 7.5, Seed: 1234, Size: 512x512, Model hash: 6ce0161689, Model: <model>

  (the negative line is left out when there is none; ``Model hash`` only when the renderer knows one).
- ``storyboard``: JSON with the full resolved job, the renderer's identity, the content key, the story's title,
  file and panel number, the build options, and the storyboard version that drew it.
"""

from __future__ import annotations

import json
import shlex
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.errors import ProvenanceError
from storyboard.files import PNG_SIGNATURE

PARAMETERS = "parameters"
STORYBOARD = "storyboard"



# --------------------------------------------------------------------------- the A1111 `parameters` text


def _quote(value: Any) -> str:
    """Quote a value the way A1111 does: JSON-quoted only when it holds a comma, colon or newline."""
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def a1111_parameters(job: Any, identity: dict[str, Any], renderer: str) -> str:
    """The A1111 ``parameters`` text for a panel job drawn by `renderer` with `identity`."""
    fields: list[tuple[str, Any]] = [
        ("Steps", job.steps),
        ("Sampler", identity.get("sampler") or renderer),
        ("CFG scale", job.guidance),
        ("Seed", job.seed),
        ("Size", f"{job.width}x{job.height}"),
    ]
    if identity.get("model_hash"):
        fields.append(("Model hash", identity["model_hash"]))
    fields.append(("Model", job.model))
    if isinstance(identity.get("vae"), dict) and identity["vae"].get("model"):
        fields.append(("VAE", identity["vae"]["model"]))
    if identity.get("dtype"):
        fields.append(("Precision", identity["dtype"]))
    lines = [job.prompt]
    if job.negative_prompt:
        lines.append(f"Negative prompt: {job.negative_prompt}")
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in fields))
    return "\n".join(lines)


# --------------------------------------------------------------------------- PNG text chunks


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    return chunks


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _text_chunk(key: str, value: str) -> bytes:
    """A tEXt chunk when the value is Latin-1 (as Pillow writes it), else an uncompressed UTF-8 iTXt chunk."""
    try:
        return _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return _chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))


def _chunk_key(kind: bytes, body: bytes) -> bytes | None:
    if kind in (b"tEXt", b"zTXt", b"iTXt"):
        return body.split(b"\0", 1)[0]
    return None


def text_chunk(data: bytes, key: str) -> str | None:
    """The value of the tEXt or uncompressed iTXt chunk `key` in PNG `data`, or None."""
    wanted = key.encode("latin-1")
    for kind, body in _chunks(data):
        if _chunk_key(kind, body) != wanted:
            continue
        if kind == b"tEXt":
            return body[len(wanted) + 1:].decode("latin-1")
        if kind == b"iTXt" and body[len(wanted) + 1] == 0:
            _, _, rest = body[len(wanted) + 3:].partition(b"\0")  # language tag
            _, _, text = rest.partition(b"\0")  # translated keyword
            return text.decode("utf-8")
    return None


def with_text(data: bytes, key: str, value: str) -> bytes:
    """PNG `data` with its text chunk `key` set to `value`; pixels and every other chunk are kept byte for byte.

    The chunk takes the place of the one it replaces (or goes before the image data), so setting a value a
    file already holds gives back the very same bytes.
    """
    out = [PNG_SIGNATURE]
    placed = False
    for kind, body in _chunks(data):
        if _chunk_key(kind, body) == key.encode("latin-1"):
            if not placed:
                out.append(_text_chunk(key, value))
                placed = True
            continue
        if kind in (b"IDAT", b"IEND") and not placed:
            out.append(_text_chunk(key, value))
            placed = True
        out.append(_chunk(kind, body))
    return b"".join(out)


# --------------------------------------------------------------------------- reading provenance back


@dataclass
class Provenance:
    """What a storyboard PNG says about how it was made."""

    path: Path
    parameters: str
    record: dict[str, Any]

    @property
    def job(self) -> dict[str, Any]:
        return self.record["job"]

    @property
    def panel(self) -> int:
        """The panel number; 0 for a character's anchor portrait."""
        return int(self.record["story"].get("panel") or 0)

    @property
    def character(self) -> str:
        """For an anchor portrait, the character's name; else ''."""
        return str(self.record["story"].get("character") or "")

    @property
    def story_file(self) -> str:
        return self.record["story"]["file"]


def read_provenance(path: str | Path) -> Provenance:
    """Read the provenance chunks of a storyboard PNG; raise `ProvenanceError` with one clear line otherwise."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            kind = image.format
            text = dict(getattr(image, "text", {}) or {})
    except FileNotFoundError:
        raise ProvenanceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ProvenanceError(f"{path}: is a folder, not a PNG image") from None
    except UnidentifiedImageError:
        raise ProvenanceError(f"{path}: not an image") from None
    except OSError as exc:
        raise ProvenanceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, Image.DecompressionBombError) as exc:  # a text chunk or a size past Pillow's limits
        raise ProvenanceError(f"{path}: cannot read: {exc}") from None
    if kind != "PNG":
        raise ProvenanceError(f"{path}: is a {kind} image; storyboard writes its provenance into PNG panels")
    raw = text.get(STORYBOARD)
    if raw is None:
        hint = " (it has A1111 'parameters' but was not made by storyboard)" if PARAMETERS in text else ""
        raise ProvenanceError(f"{path}: no storyboard provenance in this PNG{hint}")
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        record = None
    if not _well_formed(record):
        raise ProvenanceError(f"{path}: the storyboard provenance chunk is damaged")
    return Provenance(path, text.get(PARAMETERS, ""), record)


def _well_formed(record: Any) -> bool:
    """Whether the fields `describe` and `reproduce_commands` rely on have the types a build writes."""
    if not (isinstance(record, dict) and isinstance(record.get("job"), dict) and isinstance(record.get("story"), dict)
            and isinstance(record.get("build", {}), dict) and isinstance(record.get("identity", {}), dict)):
        return False
    panel, build = record["story"].get("panel"), record.get("build", {})
    character = record["story"].get("character")
    placed = (type(panel) is int and panel >= 1) or (panel is None and isinstance(character, str) and character)
    return (placed and isinstance(record["story"].get("file"), str)
            and isinstance(record.get("renderer", ""), str)
            and all(isinstance(build.get(k), (str, type(None))) for k in ("out", "model"))
            and (not record.get("variant") or type(record["job"].get("seed")) is int))


def reproduce_commands(p: Provenance) -> list[tuple[str, list[str]]]:
    """What to run to draw this image again from its story file: (heading, commands) pairs."""
    story = p.story_file
    build = p.record.get("build", {})
    options = []
    if build.get("out"):
        options += ["--out", build["out"]]
    options += ["--renderer", p.record.get("renderer", "draft")]
    if build.get("model"):
        options += ["--model", build["model"]]
    if p.character:  # a build draws a missing anchor; --force draws it (and the rest) again
        return [("to draw it again:", [shlex.join(["storyboard", "build", story, *options, "--force"])])]
    panel = ["--panel", str(p.panel)]
    if p.record.get("variant"):
        seed = str(p.job["seed"])
        return [
            ("to draw it again:",
             [shlex.join(["storyboard", "variants", story, *panel, "--count", "1", "--seed-start", seed, *options])]),
            (f"to use it for panel {p.panel}:",
             [shlex.join(["storyboard", "pick", story, *panel, "--seed", seed]),
              shlex.join(["storyboard", "build", story, *options])]),
        ]
    return [("to draw it again:", [shlex.join(["storyboard", "build", story, *options, *panel])])]




def describe(p: Provenance, current_job: dict[str, Any] | None = None) -> str:
    """Readable text: what the image shows, how it was drawn, and how to draw it again.

    `current_job` is the panel's job as the story file resolves today (``PanelJob.params()``), if the story
    could be read; any difference from the image's job is pointed out, since the commands then draw something else.
    """
    job, record = p.job, p.record
    identity = record.get("identity", {})
    title = record["story"].get("title", "")
    what = "candidate for panel" if record.get("variant") else "panel"
    version = f" (version {identity['version']})" if identity.get("version") else ""
    shows = f"anchor portrait of {p.character!r}" if p.character else f"{what} {p.panel}"
    lines = [
        f"{p.path}: {shows} of \"{title}\" ({p.story_file})",
        f"drawn by storyboard {record.get('storyboard', '?')} with the {record.get('renderer', '?')} renderer{version}",
        "",
    ]
    values = {
        "prompt": job.get("prompt"),
        "negative": job.get("negative_prompt") or "(none)",
        "seed": job.get("seed"),
        "size": f"{job.get('width')}x{job.get('height')}",
        "steps": job.get("steps"),
        "guidance": job.get("guidance"),
        "sampler": identity.get("sampler") or record.get("renderer", ""),
        "model": job.get("model"),
    }
    if identity.get("model_hash"):
        values["model hash"] = identity["model_hash"]
    values["cache key"] = record.get("key", "")
    references = record.get("references")
    if isinstance(references, dict) and references:
        order = [n for n in job.get("references") or [] if n in references] or sorted(references)
        values["anchors"] = ", ".join(f"{name} ({references[name]})" for name in order)
    lines += [f"{label + ':':<12}{value}" for label, value in values.items()]
    for heading, commands in reproduce_commands(p):
        lines += ["", heading, *(f"  {command}" for command in commands)]
    if current_job is not None:
        changed = [field for field, value in current_job.items()
                   if job.get(field) != value and not (field == "seed" and record.get("variant"))]
        if changed:
            verb = "differs" if len(changed) == 1 else "differ"
            lines += ["", f"note: {p.story_file} has changed since ({', '.join(changed)} now {verb}); "
                      "these commands would draw something else"]
    return "\n".join(lines) + "\n"
