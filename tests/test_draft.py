from __future__ import annotations

from PIL import ImageChops

from storyboard import load_story, resolve
from storyboard.render import get_renderer
from storyboard.render.draft import draw_card, framing


def test_framing_detection():
    assert framing("extreme close-up of an eye")[0] == "EXTREME CLOSE-UP"
    assert framing("Close up of a rose")[0] == "CLOSE-UP"
    assert framing("upper body close-up of the pilot")[0] == "MEDIUM CLOSE-UP"
    assert framing("medium shot of a pilot")[0] == "MEDIUM SHOT"
    assert framing("full body shot of the prince")[0] == "FULL BODY"
    assert framing("wide shot of the desert")[0] == "WIDE SHOT"
    assert framing("establishing shot of a city")[0] == "EXTREME WIDE SHOT"
    assert framing("a fox in a forest") is None


def test_cards_are_deterministic_and_distinct(write_story):
    story = load_story(write_story("""
        title: x
        render: {width: 256, height: 192}
        panels:
          - prompt: close-up of a rose
            caption: 玫瑰
          - prompt: wide shot of a desert
    """))
    jobs = resolve(story)
    first = [r.image for r in get_renderer("draft").render(jobs)]
    second = [r.image for r in get_renderer("draft").render(jobs)]
    assert [im.size for im in first] == [(256, 192), (256, 192)]
    assert all(ImageChops.difference(a, b).getbbox() is None for a, b in zip(first, second))
    assert ImageChops.difference(first[0], first[1]).getbbox() is not None


def test_tiny_and_odd_sizes_do_not_crash(write_story):
    story = load_story(write_story("""
        title: x
        render: {width: 64, height: 2048}
        panels:
          - prompt: a very long prompt that goes on and on and on about many things
            caption: 一个很长很长的标题，说了很多很多的话，比卡片还要长得多得多得多
    """))
    (job,) = resolve(story)
    assert draw_card(job).size == (64, 2048)
