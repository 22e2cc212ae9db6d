"""`storyboard export`: the animatic, its subtitles, the editors' timelines, the shot list and the boards sheet,
checked by reading each file back with the library that reads that format."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest
from PIL import Image

import storyboard
from storyboard.export import Built, ExportProgress, choose_formats, export_built
from storyboard.export.animatic import _cover
from storyboard.story import load_story, timeline

FILM = Path(__file__).resolve().parent.parent / "stories" / "little_prince_film.yaml"
FORMAT_FILES = ["animatic.mp4", "animatic.srt", "animatic.otio", "animatic.xml", "shotlist.csv", "boards.pdf"]


@pytest.fixture
def film(tmp_path) -> Path:
    """The repository's film story, with a small animatic so that encoding it takes little time."""
    path = tmp_path / "film.yaml"
    path.write_text(FILM.read_text(encoding="utf-8").replace("width: 1280", "width: 320"), encoding="utf-8")
    return path


def export(path: Path, out: Path, formats: str = "all", progress: ExportProgress | None = None):
    result = storyboard.build(path, out, renderer="draft")
    return result, export_built(Built.of(result), choose_formats(formats, result.story), progress)


def decoded(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        return [frame.to_image() for frame in container.decode(stream)]


def test_a_film_exports_six_files_that_read_back(film, tmp_path):
    out = tmp_path / "out"
    result, done = export(film, out)
    assert [e.path.name for e in done] == FORMAT_FILES and all(e.made for e in done)
    story = result.story
    boards = timeline(story)
    fps = story.animatic.fps
    ends = [round(b.end * fps) for b in boards]
    starts = [round(b.start * fps) for b in boards]

    # The video: every frame, at the asked size; a static board's middle frame is its picture.
    frames = decoded(out / "animatic.mp4")
    assert len(frames) == round(sum(b.duration for b in boards) * fps) == 660
    assert {f.size for f in frames} == {(320, 180)}
    first = boards[0]
    assert first.framing.move == "static" and not first.subtitle()
    middle = frames[(starts[0] + ends[0]) // 2]
    picture = Image.open(out / "panels" / "panel-01.png").convert("RGB")
    expected = picture.resize((320, 180), Image.Resampling.BILINEAR, box=_cover(picture.size, 320 / 180))
    difference = np.abs(np.asarray(middle, dtype=int) - np.asarray(expected, dtype=int)).mean()
    assert difference < 4, difference
    moving = frames[starts[1]: ends[1]]  # a push-in: its first and last frames differ
    assert np.abs(np.asarray(moving[0], dtype=int) - np.asarray(moving[-1], dtype=int)).mean() > 1

    # The subtitles: a cue per board that says something, on that board's frames.
    cues = (out / "animatic.srt").read_text(encoding="utf-8").strip().split("\n\n")
    said = [b for b in boards if b.subtitle()]
    assert len(cues) == len(said) == 5
    assert cues[0] == "1\n00:00:03,000 --> 00:00:07,000\npilot: Eight days of water."
    for cue, board in zip(cues, said):
        times = cue.split("\n")[1]
        start = round(board.start * fps) / fps
        assert times.startswith(f"00:00:{int(start):02d},{round(start % 1 * 1000):03d} --> ")

    # OpenTimelineIO reads its file back: a clip per board, named by shot, as long as the board.
    read = otio.adapters.read_from_file(str(out / "animatic.otio"))
    clips = list(read.find_clips())
    assert [c.name for c in clips] == [b.shot for b in boards]
    assert [c.duration().to_frames() for c in clips] == [e - s for s, e in zip(starts, ends)]
    assert read.duration().to_frames() == 660
    assert clips[1].markers[0].name == "pilot: Eight days of water."

    # Final Cut Pro 7 XML: a clipitem per board, in time.
    sequence = ET.parse(out / "animatic.xml").getroot().find("sequence")
    items = sequence.findall("./media/video/track/clipitem")
    assert [i.findtext("name") for i in items] == [b.shot for b in boards]
    assert [(int(i.findtext("start")), int(i.findtext("end"))) for i in items] == list(zip(starts, ends))
    assert sequence.findtext("duration") == "660"
    assert items[0].find("file/pathurl").text.startswith("file://localhost/")

    # The shot list: a header and a row per board.
    with open(out / "shotlist.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    assert rows[1] == {"scene": "1", "heading": "EXT. SAHARA DESERT - DAY", "shot": "1B", "size": "wide",
                       "angle": "low", "move": "push-in", "lens": "24", "duration": "4", "start": "00:00:03:00",
                       "action": "The pilot kicks the propeller; sand pours out.",
                       "dialogue": "pilot: Eight days of water.", "caption": "",
                       "notes": "Hold on the horizon before the push.", "image": "panels/panel-02.png"}
    assert rows[5]["shot"] == "2A" and rows[5]["heading"] == "EXT. DESERT WELL - NIGHT"

    # The boards sheet: real text, several boards a page.
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(out / "boards.pdf"))
    text = "".join(document[n].get_textpage().get_text_range() for n in range(len(document)))
    assert len(document) == 3
    assert "1A" in text and "EXT. SAHARA DESERT - DAY" in text and "PILOT: Eight days of water." in text
    assert "Notes: Hold on the horizon before the push." in text


def test_a_duration_edit_redraws_nothing_and_the_times_follow(film, tmp_path):
    out = tmp_path / "out"
    export(film, out, "animatic,otio,shotlist")
    film.write_text(film.read_text(encoding="utf-8").replace("duration: 4.0", "duration: 6.0", 1), encoding="utf-8")
    result, done = export(film, out, "animatic,otio,shotlist")
    assert result.rendered == 0
    assert all(e.made for e in done)
    assert len(decoded(out / "animatic.mp4")) == 660 + 2 * 24
    assert "00:00:03,000 --> 00:00:09,000" in (out / "animatic.srt").read_text(encoding="utf-8")
    read = otio.adapters.read_from_file(str(out / "animatic.otio"))
    assert list(read.find_clips())[1].duration().to_frames() == 6 * 24
    with open(out / "shotlist.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert (rows[1]["duration"], rows[2]["start"]) == ("6", "00:00:09:00")


def test_a_shot_size_edit_redraws_that_panel_only(film, tmp_path):
    out = tmp_path / "out"
    export(film, out, "shotlist")
    film.write_text(film.read_text(encoding="utf-8").replace("size: medium,", "size: close-up,", 1),
                    encoding="utf-8")
    result, _ = export(film, out, "shotlist")
    assert [p.job.index for p in result.panels if p.rendered] == [3]


def test_no_change_rewrites_nothing(film, tmp_path):
    out = tmp_path / "out"
    export(film, out)
    before = {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in FORMAT_FILES}
    _, done = export(film, out)
    assert not any(e.made for e in done)
    assert {name: ((out / name).read_bytes(), (out / name).stat().st_mtime_ns) for name in FORMAT_FILES} == before


def test_an_interrupted_export_leaves_no_half_written_video(film, tmp_path):
    out = tmp_path / "out"
    export(film, out, "animatic")
    video = (out / "animatic.mp4").read_bytes()
    film.write_text(film.read_text(encoding="utf-8").replace("duration: 4.0", "duration: 5.0", 1), encoding="utf-8")

    class Interrupt(ExportProgress):
        def frame(self, done, total):
            if done == 100:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(film, out, "animatic", Interrupt())
    assert (out / "animatic.mp4").read_bytes() == video
    assert not list(out.rglob("*.tmp")) and not (out / ".scratch").exists()
    _, done = export(film, out, "animatic")  # the next export makes it
    assert done[0].made and len(decoded(out / "animatic.mp4")) == 660 + 24


def test_a_comic_story_exports_what_makes_sense_for_it(write_story, tmp_path):
    path = write_story("""
        title: A comic
        render: {width: 96, height: 64}
        animatic: {width: 128}
        panels:
          - {prompt: a fox, caption: The fox waits.}
          - {prompt: a rose, dialogue: [{speaker: rose, text: "Tame me."}]}
          - {prompt: a field}
        """)
    out = tmp_path / "out"
    _, done = export(path, out)
    # No boards sheet (a comic has its pages); the comic book and the e-book instead.
    assert [e.path.name for e in done] == [*FORMAT_FILES[:5], "A comic.cbz", "A comic.epub"]
    frames = decoded(out / "animatic.mp4")
    assert len(frames) == 3 * 2 * 24 and frames[0].size == (128, 86)
    assert (out / "animatic.srt").read_text(encoding="utf-8") == (
        "1\n00:00:00,000 --> 00:00:02,000\nThe fox waits.\n\n2\n00:00:02,000 --> 00:00:04,000\nrose: Tame me.\n")
    with open(out / "shotlist.csv", encoding="utf-8-sig", newline="") as f:
        assert [row["shot"] for row in csv.DictReader(f)] == ["1A", "1B", "1C"]


def test_a_film_page_shows_shot_lines_and_a_player_for_the_animatic(film, tmp_path):
    out = tmp_path / "out"
    storyboard.build(film, out, renderer="draft")
    html = (out / "index.html").read_text(encoding="utf-8")
    assert '<video class="animatic" src="animatic.mp4"' in html
    assert "<figcaption>1B · WS · low · push-in · 24 mm · 4 s</figcaption>" in html


def test_a_comic_page_has_no_player(minimal_story, tmp_path):
    storyboard.build(minimal_story, tmp_path / "out", renderer="draft")
    assert "<video" not in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def test_export_on_the_command_line(film, tmp_path, capsys):
    from storyboard.cli import main

    out = tmp_path / "out"
    assert main(["export", str(film), "--renderer", "draft", "--out", str(out), "--format", "csv,srt"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["rendered 9, reused 0 (draft renderer)", f"wrote animatic.srt, shotlist.csv in {out}"]
    assert main(["export", str(film), "--renderer", "draft", "--out", str(out), "--format", "csv,srt"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        f"wrote nothing new in {out}; unchanged: animatic.srt, shotlist.csv"


def test_an_unknown_format_is_one_line_before_anything_is_drawn(film, tmp_path, capsys):
    from storyboard.cli import main

    out = tmp_path / "out"
    assert main(["export", str(film), "--renderer", "draft", "--out", str(out), "--format", "mp4,otoi"]) == 1
    assert capsys.readouterr().err == ("Error: --format: unknown format 'otoi' (did you mean 'otio'?); choose from: "
                                       "all, animatic, srt, otio, fcpxml, shotlist, boards, cbz, epub\n")
    assert not out.exists()


def test_exporting_before_building_says_so(film, tmp_path):
    from storyboard.errors import ExportError
    from storyboard.output import OutputFolder

    built = Built(load_story(film), OutputFolder(tmp_path / "never-built"), ("k",) * 9)
    with pytest.raises(ExportError, match="panel-01.png is missing: build the story before exporting it"):
        export_built(built, choose_formats("shotlist", built.story))


def test_serve_exports_again_after_each_build(film, tmp_path):
    from storyboard.serve.builder import Builder
    from storyboard.serve.events import EventBus
    from storyboard.session import Session

    class Recording(EventBus):
        def __init__(self):
            super().__init__()
            self.seen = []

        def publish(self, kind, **data):
            self.seen.append((kind, data))
            super().publish(kind, **data)

    bus = Recording()
    with Session(film, tmp_path / "out", renderer="draft") as session:
        builder = Builder(session, bus, export="shotlist,srt")
        builder.start()
        try:
            builder.story_saved()
            assert builder.wait_idle(1, timeout=60)
            film.write_text(film.read_text(encoding="utf-8").replace("duration: 4.0", "duration: 5.0", 1),
                            encoding="utf-8")
            builder.story_saved()
            assert builder.wait_idle(2, timeout=60)
            builder.story_saved()  # nothing changed: nothing is made again
            assert builder.wait_idle(3, timeout=60)
        finally:
            builder.stop()
    exports = [data for kind, data in bus.seen if kind == "export-done"]
    assert exports == [{"made": ["animatic.srt", "shotlist.csv"], "kept": []},
                       {"made": ["animatic.srt", "shotlist.csv"], "kept": []},
                       {"made": [], "kept": ["animatic.srt", "shotlist.csv"]}]


def test_serve_refuses_an_unknown_export_format_in_one_line(film, capsys):
    from storyboard.cli import main

    assert main(["serve", str(film), "--renderer", "draft", "--export", "gif"]) == 1
    assert capsys.readouterr().err == ("Error: --export: unknown format 'gif'; choose from: all, animatic, srt, "
                                       "otio, fcpxml, shotlist, boards, cbz, epub\n")


def test_a_dissolve_blends_the_last_half_second_into_the_next_board(write_story, tmp_path):
    path = write_story("""
        title: Two boards
        medium: film
        render: {width: 128, height: 72}
        animatic: {width: 128, transition: dissolve, subtitles: none}
        panels:
          - {prompt: a fox, duration: 2}
          - {prompt: a rose, duration: 2}
        """)
    out = tmp_path / "out"
    export(path, out, "animatic")
    frames = [np.asarray(f, dtype=int) for f in decoded(out / "animatic.mp4")]
    assert len(frames) == 96

    def distance(a, b):
        return np.abs(a - b).mean()

    fox, rose = frames[10], frames[60]
    assert distance(fox, rose) > 5
    assert distance(frames[35], fox) < 2  # before the dissolve: the first board
    middle = frames[42]  # half way through the 12 blended frames (36 to 47)
    assert distance(middle, fox) > 2 and distance(middle, rose) > 2
    assert distance(frames[48], rose) < 2  # the second board from its first frame


def test_export_draws_with_the_renderer_the_story_names(write_story, tmp_path, capsys):
    from storyboard.cli import main

    path = write_story("title: x\nrender: {renderer: draft, width: 64, height: 64}\npanels:\n  - {prompt: a fox}\n")
    out = tmp_path / "out"
    assert main(["export", str(path), "--out", str(out), "--format", "shotlist"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "rendered 1, reused 0 (draft renderer)"


def test_the_animatic_holds_at_most_two_pictures_at_once(film, tmp_path, monkeypatch):
    from storyboard.export import animatic

    alive, most = [0], [0]
    opened, closed = animatic.Still.__init__, animatic.Still.close

    def counting_init(self, *args, **kwargs):
        opened(self, *args, **kwargs)
        alive[0] += 1
        most[0] = max(most[0], alive[0])

    def counting_close(self):
        closed(self)
        alive[0] -= 1

    monkeypatch.setattr(animatic.Still, "__init__", counting_init)
    monkeypatch.setattr(animatic.Still, "close", counting_close)
    film.write_text(film.read_text(encoding="utf-8").replace("transition: cut", "transition: dissolve"),
                    encoding="utf-8")
    export(film, tmp_path / "out", "animatic")
    assert (most[0], alive[0]) == (2, 0)  # the board playing and the one it dissolves into; all let go
