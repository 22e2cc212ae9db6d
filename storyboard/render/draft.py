"""The draft renderer: an offline storyboard card per panel, drawn with Pillow.

It needs no model and no network. Each card shows the panel number, the shot framing the prompt names (with a
rough thumbnail of it), the start of the prompt, the seed and the size, and is marked as a draft. The caption is
left to the page, which prints it with the panel.
Cards are deterministic: the same job always gives the same pixels.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw

from storyboard.render import Reference, Rendered, StepCallback
from storyboard.resolve import PanelJob
from storyboard.text import FontChain, font, wrap

# 2: caption and prompt drawn with the CJK font chain (hangul was missing); 3: no caption (the page prints it)
VERSION = "3"

PAPER = (246, 242, 232)
INK = (40, 40, 48)
MUTED = (112, 108, 100)
SKETCH = (160, 170, 190)
BAND = 40 / 512  # the header band, as a share of the card's shorter side
# What the page leaves free of speech bubbles and narration at the top of a card, as a share of its height: the
# band and a little air.
PAGE_HEADER = 44 / 512
ACCENTS = [(231, 111, 81), (42, 157, 143), (233, 196, 106), (38, 70, 83), (244, 162, 97), (106, 76, 147)]

# (pattern, label, visible part of a standing figure: top and bottom in head-heights, or None for a tiny figure)
FRAMINGS: list[tuple[re.Pattern[str], str, tuple[float, float] | None]] = [
    (re.compile(p, re.I), label, span)
    for p, label, span in [
        (r"\bextreme[\s-]+close[\s-]?ups?\b|\bECU\b|\bmacro shot\b", "EXTREME CLOSE-UP", (0.25, 1.6)),
        (r"\bmedium[\s-]+close[\s-]?ups?\b|\bupper[\s-]body\b|\bhalf[\s-]body\b|\bbust shot\b",
         "MEDIUM CLOSE-UP", (-0.4, 4.2)),
        (r"\bclose[\s-]?ups?\b|\bheadshot\b|\bclose shot\b", "CLOSE-UP", (-0.3, 2.6)),
        (r"\bcowboy shot\b|\bmedium[\s-]+(?:long|full|wide)[\s-]+shot\b|\bthree[\s-]quarter shot\b",
         "MEDIUM LONG SHOT", (-0.5, 6.6)),
        (r"\bmedium[\s-]+shot\b|\bmid[\s-]shot\b|\bwaist[\s-]up\b|\bmedium\b", "MEDIUM SHOT", (-0.5, 5.4)),
        (r"\bfull[\s-]+body\b|\bfull[\s-]+(?:length|shot)\b", "FULL BODY", (-0.8, 9.8)),
        (r"\bextreme[\s-]+wide\b|\bestablishing shot\b|\bpanorama\b|\baerial\b", "EXTREME WIDE SHOT", None),
        (r"\bwide[\s-]+(?:angle[\s-]+)?shot\b|\blong shot\b|\bwide view\b|\blandscape\b", "WIDE SHOT", None),
        (r"\bover[\s-]the[\s-]shoulder\b", "OVER THE SHOULDER", (-0.4, 4.2)),
        (r"\bbird'?s[\s-]eye\b|\btop[\s-]down\b", "BIRD'S-EYE VIEW", None),
        (r"\blow[\s-]angle\b", "LOW ANGLE", (-0.8, 9.8)),
        (r"\bhigh[\s-]angle\b", "HIGH ANGLE", (-0.8, 9.8)),
    ]
]


def framing(prompt: str) -> tuple[str, tuple[float, float] | None] | None:
    """The shot framing a prompt names, as (label, visible figure span), or None."""
    for pattern, label, span in FRAMINGS:
        if pattern.search(prompt):
            return label, span
    return None


class DraftRenderer:
    name = "draft"
    reads_references = True  # a card is a plan, not a picture: it names its characters and needs no anchor pixels
    page_header = PAGE_HEADER  # the page keeps its speech bubbles off the card's header band
    names_model = False  # no model draws a card: the page's footer names none

    def prepare(self, jobs: Sequence[PanelJob]) -> None:
        """Nothing to fetch: a card needs no model."""

    def identity(self, job: PanelJob) -> dict[str, Any]:
        # A card shows the panel number and the panel's own prompt, so they decide its pixels too.
        identity = {"renderer": self.name, "version": VERSION, "index": job.index, "scene": job.scene}
        if job.framing:  # a film panel's shot, which its card names
            identity["framing"] = job.framing
        if job.is_anchor:
            identity["character"] = job.character
        return identity

    def render(self, jobs: Sequence[PanelJob], on_step: StepCallback | None = None,
               references: Mapping[str, Reference] | None = None) -> Iterator[Rendered]:
        for job in jobs:
            image = draw_card(job)
            if on_step:
                on_step(job, 1, 1)
            yield Rendered(job, image, {"draft": True})


def draw_card(job: PanelJob) -> Image.Image:
    w, h = job.width, job.height
    unit = min(w, h) / 512
    pad = max(2, round(16 * unit))
    accent = ACCENTS[(job.index - 1) % len(ACCENTS)]
    image = Image.new("RGB", (w, h), PAPER)
    draw = ImageDraw.Draw(image)
    shot = (framing(job.framing) if job.framing else None) or framing(job.scene or job.prompt)

    # Header band: draft marker and panel number on the left, framing on the right.
    small = font(max(6, round(18 * unit)))
    band = max(8, round(BAND * min(w, h)))  # the page keeps its speech bubbles off it (PAGE_HEADER)
    draw.rectangle((0, 0, w, band), fill=accent)
    if job.is_anchor:  # a character's name may be in any script
        chain = FontChain(small.size)
        ascent, descent = small.getmetrics()
        chain.draw(draw, (pad, band / 2 + (ascent + descent) / 2), f"DRAFT · {job.character.upper()}", "white",
                   anchor="ld")
    else:
        draw.text((pad, band / 2), f"DRAFT · PANEL {job.index}", font=small, fill="white", anchor="lm")
    if shot:
        draw.text((w - pad, band / 2), shot[0], font=small, fill="white", anchor="rm")

    # Footer: seed and size, the numbers needed to reproduce the real render.
    footer_h = max(8, round(30 * unit))
    draw.line((pad, h - footer_h, w - pad, h - footer_h), fill=MUTED, width=max(1, round(unit)))
    draw.text((pad, h - footer_h / 2), f"seed {job.seed}", font=small, fill=INK, anchor="lm")
    draw.text((w - pad, h - footer_h / 2), f"{w}×{h} · {job.steps} steps", font=small, fill=MUTED, anchor="rm")

    # Text block above the footer: the start of the prompt.
    text_w = w - 2 * pad
    tiny = FontChain(max(6, round(15 * unit)))
    blocks: list[tuple[list[str], Any, tuple[int, int, int]]] = [
        (wrap(job.scene or job.prompt, tiny, text_w, max_lines=3), tiny, MUTED)]
    y = h - footer_h - pad // 2
    for lines, fnt, colour in reversed(blocks):
        line_h = round(fnt.size * 1.3)
        for line in reversed(lines):
            fnt.draw(draw, (pad, y), line, colour, anchor="ld")
            y -= line_h
        y -= pad // 2

    # Thumbnail of the framing between header and text.
    frame = (pad, band + pad, w - pad, max(band + pad + 4, int(y)))
    _draw_thumbnail(image, frame, shot, unit)
    return image


def _draw_thumbnail(image: Image.Image, box: tuple[int, int, int, int],
                    shot: tuple[str, tuple[float, float] | None] | None, unit: float) -> None:
    x0, y0, x1, y1 = box
    fw, fh = x1 - x0, y1 - y0
    if fw < 8 or fh < 8:
        return
    layer = Image.new("RGB", (fw, fh), (252, 250, 245))
    draw = ImageDraw.Draw(layer)
    line = max(1, round(unit))
    for k in (1, 2):  # rule of thirds
        draw.line((fw * k / 3, 0, fw * k / 3, fh), fill=(225, 222, 214), width=line)
        draw.line((0, fh * k / 3, fw, fh * k / 3), fill=(225, 222, 214), width=line)
    if shot is None:
        label = font(max(6, round(16 * unit)))
        draw.text((fw / 2, fh / 2), "framing not named in the prompt", font=label, fill=SKETCH, anchor="mm")
    else:
        span = shot[1]
        if span is None:  # wide shots: horizon and a small figure
            horizon = fh * 2 / 3
            draw.line((0, horizon, fw, horizon), fill=SKETCH, width=2 * line)
            scale = fh * 0.28 / 10
            _figure(draw, fw * 0.62, horizon - 9.4 * scale, scale, line)
        else:
            top, bottom = span
            scale = fh / (bottom - top)
            _figure(draw, fw / 2, -top * scale, scale, line)
    draw.rectangle((0, 0, fw - 1, fh - 1), outline=SKETCH, width=line)
    image.paste(layer, (x0, y0))


def _figure(draw: ImageDraw.ImageDraw, cx: float, top: float, s: float, line: int) -> None:
    """A standing figure whose head top is at `top`, in units of head height `s` (about 9.5 heads tall)."""
    width = max(1, line * 2)
    draw.ellipse((cx - 0.42 * s, top, cx + 0.42 * s, top + s), outline=SKETCH, width=width)
    draw.line((cx, top + s, cx, top + 1.3 * s), fill=SKETCH, width=width)
    draw.rounded_rectangle((cx - 1.1 * s, top + 1.3 * s, cx + 1.1 * s, top + 4.9 * s),
                           radius=0.5 * s, outline=SKETCH, width=width)
    for side in (-1, 1):
        draw.line((cx + side * 1.1 * s, top + 1.6 * s, cx + side * 1.45 * s, top + 4.8 * s), fill=SKETCH, width=width)
        draw.line((cx + side * 0.5 * s, top + 4.9 * s, cx + side * 0.6 * s, top + 9.4 * s), fill=SKETCH, width=width)
