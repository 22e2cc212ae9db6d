"""boards.pdf: the storyboard sheet people print. A4, boards in a column, each with its shot number, scene,
framing, duration and start, and its action, dialogue and notes beside it; the text is real text (searchable),
in the same fonts as the comic pages, cut down to the characters used."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from storyboard.compose.fonts import page_subsets
from storyboard.export.texts import timecode
from storyboard.story import Board, Story

if TYPE_CHECKING:
    from storyboard.export.built import Built
    from storyboard.export.run import ExportProgress

PAGE_W, PAGE_H, MARGIN = 595.28, 841.89, 36.0  # A4 in points
HEADER = 28.0
GAP = 14.0
PICTURE_SHARE = 0.56  # of the width inside the margins
INK, GREY = (20, 20, 20), (110, 110, 110)


def board_text(board: Board, fps: int) -> list[tuple[str, str]]:
    """What is printed beside a board, as (style, text) lines: 'head' (shot and scene), 'meta', 'body'."""
    head = board.shot + (f"  {board.heading}" if board.heading and _starts_scene(board) else "")
    meta = " · ".join(p for p in (board.framing.label(), f"{board.duration:g} s", timecode(board.start, fps)) if p)
    lines = [("head", head), ("meta", meta)]
    if board.action:
        lines.append(("body", board.action))
    for speaker, text in board.lines:
        lines.append(("body", f"{speaker.upper()}: {text}" if speaker else text))
    for extra in (board.narration, board.caption):
        if extra:
            lines.append(("body", extra))
    if board.notes:
        lines.append(("meta", f"Notes: {board.notes}"))
    return lines


def _starts_scene(board: Board) -> bool:
    return board.shot.endswith("A") and board.shot[:-1].isdigit()


class BoardsSheet:
    name, version = "boards", "1"

    def applies(self, story: Story) -> bool:
        return story.medium == "film"

    def make(self, built: Built, path: Path, progress: ExportProgress) -> None:
        from fpdf import FPDF
        from fpdf.enums import WrapMode

        progress.making(self.name, path)
        story = built.story
        texts = {b.panel: board_text(b, built.fps) for b in built.boards}
        subsets = page_subsets([story.title, *(t for lines in texts.values() for _, t in lines)], story.language)
        pdf = FPDF(unit="pt", format="A4")
        pdf.set_auto_page_break(False)
        pdf.set_margin(0)
        pdf.set_creator("storyboard")
        pdf.set_title(story.title)
        pdf.set_lang(story.language)
        inner = PAGE_W - 2 * MARGIN
        picture_w = inner * PICTURE_SHARE
        picture_h = picture_w / built.ratio
        text_x, text_w = MARGIN + picture_w + GAP, inner - picture_w - GAP
        per_page = max(1, int((PAGE_H - 2 * MARGIN - HEADER + GAP) // (picture_h + GAP)))
        wrap = WrapMode.CHAR if story.language.split("-")[0].lower() in ("zh", "ja", "ko") else WrapMode.WORD
        with tempfile.TemporaryDirectory(prefix="storyboard-boards-", dir=built.folder.scratch_dir) as tmp:
            families = []
            for subset in subsets:
                font_file = Path(tmp) / f"{subset.family}.otf"
                font_file.write_bytes(subset.data)
                pdf.add_font(subset.family, fname=str(font_file))
                families.append(subset.family)
            if len(families) > 1:
                pdf.set_fallback_fonts(families[1:])
            pages = (len(built.boards) + per_page - 1) // per_page
            for n, board in enumerate(built.boards):
                row = n % per_page
                if row == 0:
                    pdf.add_page()
                    pdf.set_font(families[0], size=13)
                    pdf.set_text_color(*INK)
                    pdf.set_xy(MARGIN, MARGIN)
                    pdf.cell(inner * 0.75, 16, story.title)
                    pdf.set_font(families[0], size=9)
                    pdf.set_text_color(*GREY)
                    pdf.set_xy(MARGIN + inner * 0.75, MARGIN)
                    pdf.cell(inner * 0.25, 16, f"{n // per_page + 1} / {pages}", align="R")
                top = MARGIN + HEADER + row * (picture_h + GAP)
                pdf.image(str(built.picture(board)), MARGIN, top, picture_w, picture_h, keep_aspect_ratio=True)
                pdf.set_draw_color(*INK)
                pdf.set_line_width(0.6)
                pdf.rect(MARGIN, top, picture_w, picture_h)
                pdf.set_xy(text_x, top)
                for style, text in texts[board.panel]:
                    size = {"head": 12, "meta": 8.5, "body": 9.5}[style]
                    pdf.set_font(families[0], size=size)
                    pdf.set_text_color(*(GREY if style == "meta" else INK))
                    if pdf.get_y() + size * 1.25 > top + picture_h + GAP / 2:
                        break  # what does not fit beside the picture is in the shot list
                    pdf.set_x(text_x)
                    pdf.multi_cell(text_w, size * 1.25, text, wrapmode=wrap, new_x="LMARGIN", new_y="NEXT",
                                   max_line_height=size * 1.25)
                progress.frame(n + 1, len(built.boards))
            pdf.output(str(path))
