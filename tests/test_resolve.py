from __future__ import annotations

from storyboard import final_prompt, load_story, resolve
from storyboard.resolve import content_key, join_prompt


def test_final_prompt_joins_prefix_characters_and_prompt(write_story):
    story = load_story(write_story("""
        title: x
        style:
          prefix: "pastel, "
          negative: "  lowres "
        characters:
          fox: a red fox
          prince: a boy in a green coat
        render:
          seed: 100
        panels:
          - prompt: wide shot of a field
            characters: [prince, fox]
          - prompt: close-up of a rose
            seed: 7
          - prompt: night sky
    """))
    assert final_prompt(story, 1) == "pastel, a boy in a green coat, a red fox, wide shot of a field"
    assert final_prompt(story, 2) == "pastel, close-up of a rose"
    jobs = resolve(story)
    assert [j.seed for j in jobs] == [100, 7, 102]
    assert [j.index for j in jobs] == [1, 2, 3]
    assert {j.negative_prompt for j in jobs} == {"lowres"}
    assert jobs[0].scene == "wide shot of a field"
    assert jobs[0].file == "panels/panel-01.png"
    assert resolve(story, model="/models/x")[0].model == "/models/x"


def test_empty_parts_are_skipped():
    assert join_prompt("", "  ", "a cat", ", ") == "a cat"
    assert join_prompt("style,", "a cat") == "style, a cat"


def test_content_key_is_pinned_ignores_key_order_and_changes_with_any_value(minimal_story):
    params = {"seed": 7, "prompt": "a fox", "size": [64, 64]}
    # Made by the code that keys users' caches: a different value here makes every cached panel stale.
    assert content_key(params) == "f6d7fe8ca9c5a4592275306295f7d83992b537725c525c3c88057251a8648c10"
    assert content_key({"size": [64, 64], "prompt": "a fox", "seed": 7}) == content_key(params)
    assert content_key({**params, "seed": 8}) != content_key(params)
    assert content_key({**params, "size": [64, 65]}) != content_key(params)
    assert content_key({"prompt": "un renard roux, 狐"}) == \
        "adaa65ab947e04d437967839a200b04fa1dbc735567a090637922c1afa9bb01e"  # UTF-8, not \\u escapes
    a, b = resolve(load_story(minimal_story))
    assert content_key(a.params()) != content_key(b.params())
