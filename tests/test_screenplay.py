"""A Fountain screenplay in: read with every element of the format, and planned into a film story against a real
chat server on 127.0.0.1 (dialogue verbatim, scenes in order)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chat_server import Say

from storyboard.cli import main
from storyboard.plan.screenplay import Said, Scene, read_script
from storyboard.story import load_story, timeline

SCRIPT = Path(__file__).parent / "data" / "desert.fountain"


def test_every_element_of_the_script_is_read():
    script = read_script(SCRIPT)
    assert script.title == "The Well in the Desert"
    assert script.speakers == ["PILOT", "LITTLE PRINCE", "McFOX"]  # extensions and @ gone; in order of speech
    assert script.scenes == [
        Scene("EXT. SAHARA DESERT - DAY",
              ["A tiny plane lies wrecked on the dunes. The PILOT kicks the propeller; sand pours out.",
               "The pilot turns. A small boy with golden hair stands on the sand."],
              [Said("PILOT", "Eight days of water.", "(to himself)"),
               Said("LITTLE PRINCE", "Please... draw me a sheep."),
               Said("PILOT", "Where did you come from?")],
              ["Hold on the horizon."]),
        Scene("NIGHTFALL", ["The stars come out, one by one."],  # a forced heading
              [Said("McFOX", "Tame me."), Said("PILOT", "What does that mean?"),
               Said("LITTLE PRINCE", "To tame? It means to make ties.")],  # dual dialogue, both sides in order
              transition="CUT TO:"),
        Scene("INT. COCKPIT - NIGHT", ["THE END"]),  # centred text is action; the boneyard is gone
        Scene("EXT. DESERT WELL - NIGHT", [],
              [Said("PILOT", "Listen. The well is singing."),
               Said("LITTLE PRINCE", "What is essential is invisible to the eye.")],
              transition="FADE OUT."),
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("INT. A - DAY\n\nBOB\nHi.\n\n/* the rest\nof it\n", "script.fountain:6: a boneyard (/* ... */) opens here and "
                                                         "is never closed"),
    ("INT. A - DAY\n\nBob waits. [[fix this\n\nBOB\nHi.\n", "script.fountain:3: a note ([[ ... ]]) opens here and "
                                                            "is never closed"),
    ("Just some words.\nAnd more words.\n", "script.fountain: holds no scene heading and no dialogue; is it a "
                                            "Fountain screenplay?"),
])
def test_a_malformed_script_is_one_line_and_nothing_is_written(tmp_path, capsys, text, expected):
    script = tmp_path / "script.fountain"
    script.write_text(text, encoding="utf-8")
    story = tmp_path / "film.yaml"
    assert main(["plan", str(story), "--from", str(script)]) == 1
    assert capsys.readouterr().err == f"Error: {tmp_path}/{expected}\n"
    assert not story.exists()


def test_a_script_that_is_not_utf8_is_one_line(tmp_path, capsys):
    script = tmp_path / "script.fountain"
    script.write_bytes("INT. CAFÉ - DAY\n\nBOB\nHi.\n".encode("latin-1"))
    assert main(["plan", str(tmp_path / "film.yaml"), "--from", str(script)]) == 1
    assert capsys.readouterr().err == (f"Error: {script}:1: is not UTF-8 text (byte 0xc9); save it as UTF-8\n")


SHOTS = {
    "characters": {"PILOT": "a lean pilot in a leather jacket", "LITTLE PRINCE": "a small boy with golden hair",
                   "McFOX": "a red fox with a white-tipped tail"},
    "shots": [
        {"scene": 1, "shot": {"size": "extreme-wide", "angle": "high", "move": "static"}, "duration": 3,
         "prompt": "a tiny wrecked plane on endless dunes", "action": "The wreck in the sand.", "lines": []},
        {"scene": 1, "shot": {"size": "medium", "angle": "low", "move": "push-in", "lens": 35}, "duration": 4,
         "prompt": "the pilot kicks the propeller", "action": "Sand pours out.", "characters": ["PILOT"],
         "lines": [1, 2]},
        {"scene": 1, "shot": {"size": "CU", "move": "pan-left"}, "duration": 2.5, "prompt": "the pilot turns",
         "action": "He turns.", "characters": ["PILOT", "LITTLE PRINCE"], "lines": [3]},
        {"scene": 2, "shot": {"size": "wide", "move": "tilt-up"}, "duration": 5, "prompt": "stars over the dunes",
         "action": "Night.", "lines": [4, 5, 6]},
        {"scene": 3, "shot": {"size": "medium", "move": "static"}, "duration": 2, "prompt": "an empty cockpit",
         "action": "The end.", "lines": []},
        {"scene": 4, "shot": {"size": "wide", "angle": "eye-level", "move": "pull-out"}, "duration": 6,
         "prompt": "two figures by a stone well under the stars", "action": "They listen.",
         "characters": ["PILOT", "LITTLE PRINCE"], "lines": [7, 8]},
    ],
}


@pytest.fixture
def chat(openai_chat):
    return openai_chat


def plan(chat, story: Path) -> int:
    return main(["plan", str(story), "--from", str(SCRIPT), "--provider", "openai", "--base-url", chat.openai_url,
                 "--model", "qwen-plus"])


def test_a_script_plans_into_a_film_story_with_its_dialogue_verbatim(chat, tmp_path, capsys):
    chat.add(Say(json.dumps(SHOTS)))
    story = tmp_path / "desert.yaml"
    assert plan(chat, story) == 0
    out, err = capsys.readouterr()
    assert err == "asking openai qwen-plus to shoot 4 scenes (8 lines of dialogue)...\n"
    assert out == f"planned 6 shots in 4 scenes (8 lines of dialogue kept verbatim) with openai qwen-plus → {story}\n"
    asked = json.loads(chat.requests[0].body["messages"][1]["content"].split("\n", 1)[1])
    assert [s["heading"] for s in asked["scenes"]] == ["EXT. SAHARA DESERT - DAY", "NIGHTFALL",
                                                       "INT. COCKPIT - NIGHT", "EXT. DESERT WELL - NIGHT"]
    assert asked["scenes"][0]["lines"][0] == {"n": 1, "speaker": "PILOT", "text": "Eight days of water.",
                                              "how": "(to himself)"}

    film = load_story(story)
    assert (film.title, film.medium) == ("The Well in the Desert", "film")
    assert list(film.characters) == ["PILOT", "LITTLE PRINCE", "McFOX"]
    said = [(line.speaker, line.text) for panel in film.panels for line in panel.dialogue]
    script = read_script(SCRIPT)
    assert said == [(line.speaker, line.text) for scene in script.scenes for line in scene.lines]
    boards = timeline(film)
    assert [b.shot for b in boards] == ["1A", "1B", "1C", "2A", "3A", "4A"]
    assert [b.heading for b in boards if b.shot.endswith("A")] == [s.heading for s in script.scenes]
    assert film.panels[1].shot.size == "medium" and film.panels[1].shot.lens == 35
    assert film.panels[2].shot.size == "close-up"
    assert film.panels[0].notes == "Hold on the horizon."
    assert film.panels[1].notes == "PILOT (to himself)"
    assert [p.duration for p in film.panels] == [3, 4, 2.5, 5, 2, 6]


def test_a_reply_that_loses_a_line_is_sent_back(chat, tmp_path, capsys):
    lost = json.loads(json.dumps(SHOTS))
    lost["shots"][3]["lines"] = [4, 6]
    chat.add(Say(json.dumps(lost)), Say(json.dumps(SHOTS)))
    story = tmp_path / "desert.yaml"
    assert plan(chat, story) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == ("the reply is not a valid shot list (shots[3].lines: line 6 is out of order or "
                                    "repeated (line 5 comes next) and 2 more); asking qwen-plus to fix it (repair 1 "
                                    "of 2)")
    repair = chat.requests[1].body["messages"][-1]["content"]
    assert repair.startswith("That reply is not a valid shot list:\n- shots[3].lines: line 6 is out of order")
    assert len(load_story(story).panels) == 6


def test_a_story_with_locked_panels_is_not_replaced(chat, tmp_path, capsys):
    story = tmp_path / "desert.yaml"
    text = "title: Mine\npanels:\n  - prompt: a well\n    locked: true\n"
    story.write_text(text, encoding="utf-8")
    assert plan(chat, story) == 1
    assert capsys.readouterr().err == (f"Error: {story}: has locked panels, and --from replaces every panel with the "
                                       "script's shots; unlock them or plan into a new story file\n")
    assert story.read_text(encoding="utf-8") == text and chat.requests == []


def test_a_comic_storys_planning_request_is_what_it_was():
    import hashlib

    from storyboard.plan.planner import plan_messages
    from storyboard.plan.reply import Request
    from storyboard.story import story_from_yaml

    path = Path(__file__).resolve().parent.parent / "stories" / "little_prince.yaml"
    story = story_from_yaml(path.read_text(encoding="utf-8"), file=path)
    messages = plan_messages(story, Request(count=8, names=tuple(story.characters)))
    # As commit 7d31cc5 asked, before films were planned: no shot in the schema, no film rules in the prompt.
    digest = hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest()
    assert digest == "32d43a858e095f1018082a61ae859fa230b49300cf852efc5e63d2147e39bf08"


FILM_DRAFT = """\
title: The well
medium: film
outline: A pilot and a boy look for water in the desert and find a well at night.
characters:
  pilot: a lean pilot in a leather jacket
panels:
"""


def test_planning_a_film_asks_for_shots_and_writes_them(chat, tmp_path, capsys):
    story = tmp_path / "well.yaml"
    story.write_text(FILM_DRAFT, encoding="utf-8")
    shots = [{"scene": "EXT. DESERT - DAY", "shot": {"size": "EWS", "angle": "high", "move": "static"},
              "duration": 3, "prompt": "endless dunes under a white sun", "caption": "Day eight.", "characters": [],
              "action": "Heat shimmers."},
             {"scene": "", "shot": {"size": "medium", "angle": "low", "move": "push-in"}, "duration": 4.5,
              "prompt": "the pilot digging in the sand", "caption": "Still no water.", "characters": ["pilot"],
              "action": "He digs."}]
    chat.add(Say(json.dumps({"panels": shots})))
    assert main(["plan", str(story), "--panels", "2", "--provider", "openai", "--base-url", chat.openai_url,
                 "--model", "qwen-plus"]) == 0
    request = chat.requests[0].body["messages"]
    assert "This story is a film: each panel is one shot" in request[0]["content"]
    schema = json.loads(request[1]["content"].split("valid against this JSON schema:\n", 1)[1])
    assert {"scene", "shot", "duration", "action"} <= set(schema["$defs"]["FilmPanelPlan"]["properties"])
    film = load_story(story)
    assert [(p.scene, p.shot.size, p.shot.angle, p.shot.move, p.duration, p.action) for p in film.panels] == [
        ("EXT. DESERT - DAY", "extreme-wide", "high", "static", 3, "Heat shimmers."),
        ("", "medium", "low", "push-in", 4.5, "He digs.")]
    assert "shot: {size: medium, angle: low, move: push-in}" in story.read_text(encoding="utf-8")


def test_a_planned_shot_with_an_unknown_size_is_sent_back(chat, tmp_path, capsys):
    story = tmp_path / "well.yaml"
    story.write_text(FILM_DRAFT, encoding="utf-8")
    bad = {"panels": [{"scene": "EXT. DESERT - DAY", "shot": {"size": "huge"}, "duration": 3, "prompt": "dunes",
                       "caption": "Day.", "characters": []}]}
    good = {"panels": [{**bad["panels"][0], "shot": {"size": "wide"}}]}
    chat.add(Say(json.dumps(bad)), Say(json.dumps(good)))
    assert main(["plan", str(story), "--panels", "1", "--provider", "openai", "--base-url", chat.openai_url,
                 "--model", "qwen-plus"]) == 0
    repair = chat.requests[1].body["messages"][-1]["content"]
    assert "panels[0].shot: " in repair and "unknown shot size 'huge'" in repair
    assert load_story(story).panels[0].shot.size == "wide"


def test_a_script_of_twenty_thousand_notes_is_read_in_one_pass(tmp_path):
    script = tmp_path / "notes.fountain"
    script.write_text("INT. A - DAY\n\n" + "".join(f"Bob waits. [[note {i}]]\n\n" for i in range(20000)),
                      encoding="utf-8")
    (scene,) = read_script(script).scenes
    assert len(scene.notes) == 20000 and scene.notes[-1] == "note 19999"
    assert scene.action[0] == "Bob waits."


def test_a_story_file_made_while_the_script_is_planned_is_left_alone(chat, tmp_path, capsys):
    story = tmp_path / "desert.yaml"
    chat.add(Say(json.dumps(SHOTS), before=lambda: story.write_text("title: mine\n", encoding="utf-8")))
    assert plan(chat, story) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"Error: {story} changed while the plan was being written; nothing was written, run `storyboard plan` again")
    assert story.read_text(encoding="utf-8") == "title: mine\n"
