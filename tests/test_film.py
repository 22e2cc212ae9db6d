"""Film grammar in the story file: shots, aspect ratios, durations, and what each of them redraws."""

from __future__ import annotations

from pathlib import Path

import pytest

import storyboard
from storyboard import StoryError, load_story
from storyboard.resolve import final_prompt, resolve
from storyboard.story import timeline
from storyboard.story.film import aspect_size, framing, shot_letter

FILM = Path(__file__).resolve().parent.parent / "stories" / "little_prince_film.yaml"

SMALL_FILM = """
title: Two scenes
medium: film
render: {width: 64, height: 64, steps: 2, seed: 7}
panels:
  - scene: "EXT. DESERT - DAY"
    shot: {size: WS, angle: low, move: push-in, lens: 24}
    duration: 3.0
    prompt: a plane in the sand
    action: The pilot kicks the propeller.
  - shot: {size: cu}
    prompt: a face
    dialogue: [{speaker: pilot, text: "Eight days of water."}]
  - scene: "INT. COCKPIT - NIGHT"
    prompt: stars through glass
    caption: Later.
"""


def error_of(path) -> str:
    with pytest.raises(StoryError) as info:
        load_story(path)
    return str(info.value)


def test_the_film_story_in_the_repository_has_two_scenes_and_every_move():
    story = load_story(FILM)
    assert story.medium == "film"
    assert (story.render.width, story.render.height) == (680, 384)  # 16:9 at SD 1.5's pixel count
    boards = timeline(story)
    assert [b.shot for b in boards] == ["1A", "1B", "1C", "1D", "1E", "2A", "2B", "2C", "2D"]
    assert {b.framing.move for b in boards} == {"static", "pan-left", "pan-right", "tilt-up", "tilt-down",
                                                "push-in", "pull-out", "truck-left", "truck-right"}


def test_shots_are_numbered_by_scene_and_held_for_their_duration_or_reading_time(write_story):
    story = load_story(write_story(SMALL_FILM))
    boards = timeline(story)
    assert [(b.shot, b.heading) for b in boards] == [("1A", "EXT. DESERT - DAY"), ("1B", "EXT. DESERT - DAY"),
                                                     ("2A", "INT. COCKPIT - NIGHT")]
    assert [b.duration for b in boards] == [3.0, 2.0, 2.0]  # 'pilot: Eight days of water.' reads in under 2 s
    assert [b.start for b in boards] == [0.0, 3.0, 5.0]
    assert boards[1].subtitle() == "pilot: Eight days of water."
    assert boards[0].framing.label() == "WS · low · push-in · 24 mm"
    assert boards[1].framing.size == "close-up"


def test_a_long_line_is_held_long_enough_to_read():
    story = storyboard.Story(title="t", panels=[{"prompt": "a", "dialogue": [{"text": "word " * 20}]}])
    assert timeline(story)[0].duration == 6.6  # 99 characters at 15 a second, in tenths


def test_shot_letters_go_past_z():
    assert [shot_letter(n) for n in (0, 1, 25, 26, 27, 51, 52)] == ["A", "B", "Z", "AA", "AB", "AZ", "BA"]


def test_framing_words_are_tags_for_clip_models_and_a_sentence_for_t5_ones(write_story):
    story = load_story(write_story(SMALL_FILM))
    shot = story.panels[0].shot
    assert framing(shot, "stable-diffusion-v1-5/stable-diffusion-v1-5") == "wide shot, low angle shot, 24mm lens"
    assert framing(shot, "black-forest-labs/FLUX.1-schnell") == "A wide shot from a low angle, on a 24mm lens."
    assert final_prompt(story, 1) == "wide shot, low angle shot, 24mm lens, a plane in the sand"
    assert final_prompt(story, 3) == "stars through glass"  # no shot: the prompt as written


@pytest.mark.parametrize(("aspect", "model", "size"), [
    ("16:9", "stable-diffusion-v1-5/stable-diffusion-v1-5", (680, 384)),
    ("16:9", "stabilityai/stable-diffusion-xl-base-1.0", (1344, 768)),
    ("2.39:1", "stabilityai/stable-diffusion-xl-base-1.0", (1536, 640)),
    ("9:16", "black-forest-labs/FLUX.1-dev", (768, 1360)),
    ("4:3", "stabilityai/stable-diffusion-2-1", (888, 664)),
    ("1:1", "Kwai-Kolors/Kolors-diffusers", (1024, 1024)),
])
def test_aspect_sets_the_size_for_the_model_family(aspect, model, size):
    assert aspect_size(aspect, model) == size


def test_an_explicit_width_or_height_wins_over_the_aspect(write_story):
    story = load_story(write_story("title: x\nrender: {aspect: '16:9', width: 1024}\npanels:\n  - prompt: a\n"))
    assert (story.render.width, story.render.height) == (1024, 576)
    story = load_story(write_story("title: x\nrender: {aspect: '16:9', width: 1024, height: 576}\n"
                                   "panels:\n  - prompt: a\n"))
    assert (story.render.width, story.render.height) == (1024, 576)
    story = load_story(write_story("title: x\nmedium: film\nrender: {width: 512, height: 512}\n"
                                   "panels:\n  - prompt: a\n"))
    assert (story.render.width, story.render.height) == (512, 512)  # a film may be square if it says so


@pytest.mark.parametrize(("text", "expected"), [
    ("title: x\nrender:\n  aspect: '16:9'\n  width: 512\n  height: 512\npanels:\n  - prompt: a\n",
     "story.yaml:3: render.aspect: width 512 and height 512 are 1.00:1, not 16:9; give one of them, or neither"),
    ("title: x\nrender: {aspect: '3:2'}\npanels:\n  - prompt: a\n",
     "story.yaml:2: render.aspect: expected '16:9', '2.39:1', '1.85:1', '4:3', '1:1' or '9:16', got text ('3:2')"),
    ("title: x\npanels:\n  - prompt: a\n    shot: {size: huge}\n",
     "story.yaml:4: panels[0].shot.size: unknown shot size 'huge'; choose from: extreme-wide, wide, full, "
     "medium-wide, medium, medium-close, close-up, extreme-close-up"),
    ("title: x\npanels:\n  - prompt: a\n    shot: {move: push_inn}\n",
     "story.yaml:4: panels[0].shot.move: unknown camera move 'push_inn' (did you mean 'push-in'?); choose from: "
     "static, pan-left, pan-right, tilt-up, tilt-down, push-in, pull-out, truck-left, truck-right"),
    ("title: x\npanels:\n  - prompt: a\n    duration: -2\n",
     "story.yaml:4: panels[0].duration: input should be greater than 0 (got -2)"),
    ("title: x\nanimatic: {subtitles: loud}\npanels:\n  - prompt: a\n",
     "story.yaml:2: animatic.subtitles: expected 'burn', 'srt', 'both' or 'none', got text ('loud')"),
])
def test_bad_film_values_get_one_precise_line(write_story, text, expected):
    path = write_story(text)
    assert error_of(path) == f"{path.parent}/{expected}"


def test_a_comic_story_is_untouched_by_film_grammar(minimal_story):
    story = load_story(minimal_story)
    assert story.medium == "comic" and story.render.aspect is None
    assert [j.prompt for j in resolve(story)] == [p.prompt for p in story.panels]


def test_a_shot_size_redraws_that_panel_and_timing_or_notes_redraw_nothing(write_story, tmp_path):
    path = write_story(SMALL_FILM)
    out = tmp_path / "out"
    assert storyboard.build(path, out, renderer="draft").rendered == 3
    text = path.read_text()
    path.write_text(text.replace("duration: 3.0", "duration: 5.5").replace("push-in", "pull-out")
                    .replace("The pilot kicks", "The pilot slowly kicks") + "    notes: hold it\n")
    again = storyboard.build(path, out, renderer="draft")
    assert (again.rendered, again.reused) == (0, 3)
    path.write_text(path.read_text().replace("size: cu", "size: ECU"))
    again = storyboard.build(path, out, renderer="draft")
    assert [p.rendered for p in again.panels] == [False, True, False]
