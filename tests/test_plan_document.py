"""Writing a plan into the round-trip YAML: exact output, comments where the user put them."""

from __future__ import annotations

from storyboard.plan.document import apply_plan
from storyboard.plan.reply import PanelPlan, Plan, StylePlan
from storyboard.story import StoryDraft, parse_yaml, story_from_yaml
from storyboard.story.document import Formatting, dump_yaml

STORY = """\
title: Fox
characters: {fox: a fox}
panels:
  # first
  - prompt: a
    # inner comment
    caption: b   # about b

  # the second panel comes next
  - prompt: c
    characters:
      - fox

  # third
  - prompt: d
    seed: 5 # pinned

# end of file
"""


def planned(text: str, count: int, **extra) -> tuple[str, list[str]]:
    document = parse_yaml(text)
    story = StoryDraft.model_validate(document)
    plan = Plan(panels=[PanelPlan(prompt=f"P{i}", caption=f"C{i}", characters=["fox"]) for i in range(count)],
                **extra)
    added = apply_plan(document, story, plan, provider="dashscope", model="qwen-plus")
    out = dump_yaml(document, Formatting())
    story_from_yaml(out)  # always a valid story
    return out, added


def test_comments_stay_with_what_they_introduce():
    out, added = planned(STORY, 5)
    assert added == []
    assert out == """\
title: Fox
characters: {fox: a fox}
planned_by: {provider: dashscope, model: qwen-plus}
panels:
  # first
  - prompt: P0
    # inner comment
    caption: C0  # about b
    characters: [fox]

  # the second panel comes next
  - prompt: P1
    caption: C1
    characters:
      - fox

  # third
  - prompt: P2
    caption: C2
    characters: [fox]
    seed: 5 # pinned
  - prompt: P3
    caption: C3
    characters: [fox]
  - prompt: P4
    caption: C4
    characters: [fox]

# end of file
"""


def test_fewer_panels_keep_the_end_of_the_file():
    out, _ = planned(STORY, 2)
    assert out.endswith("    characters:\n      - fox\n\n  # third\n\n# end of file\n")
    assert "prompt: P2" not in out and "seed: 5" not in out


def test_empty_sections_are_filled_where_they_stand():
    text = ("title: Fox   # t\nstyle: {}\ncharacters: {}\nrender: {width: 64, height: 64}\n"
            "panels: []  # to plan\n")
    out, added = planned(text, 1, style=StylePlan(prefix="ink", negative="blur"), characters={"fox": "a fox"})
    assert added == ["style", "characters"]
    assert out == ("title: Fox   # t\nstyle:\n  prefix: ink\n  negative: blur\ncharacters:\n  fox: a fox\n"
                   "render: {width: 64, height: 64}\nplanned_by: {provider: dashscope, model: qwen-plus}\n"
                   "panels:     # to plan\n  - prompt: P0\n    caption: C0\n    characters: [fox]\n")


def test_a_style_without_prefix_gets_one_and_keeps_its_negative():
    text = "title: Fox\nstyle:\n  negative: 'ugly'   # mine\ncharacters: {fox: a fox}\npanels:\n  - prompt: a\n"
    out, added = planned(text, 1, style=StylePlan(prefix="ink", negative="blur"))
    assert added == ["style"]
    assert out.startswith("title: Fox\nstyle:\n  prefix: ink\n  negative: 'ugly'   # mine\n")


def test_a_first_plan_adds_sections_in_order_with_blank_lines():
    text = "# header\ntitle: Fox\n\n# what happens\noutline: A fox.\n"
    out, added = planned(text, 1, style=StylePlan(prefix="ink"), characters={"fox": "a red fox"})
    assert added == ["style", "characters", "render"]
    assert out == """\
# header
title: Fox

# what happens
outline: A fox.

style:
  prefix: ink
  negative: ''

characters:
  fox: a red fox

render:
  model: stable-diffusion-v1-5/stable-diffusion-v1-5
  width: 512
  height: 512
  steps: 25
  guidance: 7.5
  seed: 1234
  scheduler: dpmpp_2m_karras

planned_by: {provider: dashscope, model: qwen-plus}

panels:
  - prompt: P0
    caption: C0
    characters: [fox]
"""
