"""The reply parser and checks, and the story-file changes `plan` relies on, without any server."""

from __future__ import annotations

import json

import pytest

from storyboard.errors import StoryError
from storyboard.plan.backend import describe, keep_secret, redact, retry_after
from storyboard.plan.reply import BadReply, Request, extract_json, parse_reply, reply_schema
from storyboard.retry import RetryPolicy
from storyboard.story import load_document, load_story, save_document, story_from_yaml

PANEL = {"prompt": "wide shot of a fox", "caption": "A fox.", "characters": ["fox"]}


def reply(*panels: dict, **extra: object) -> str:
    return json.dumps({"panels": list(panels), **extra})


@pytest.mark.parametrize("text", [
    reply(PANEL),
    f"```json\n{reply(PANEL)}\n```",
    f"Here you go {{as promised}}:\n```\n{reply(PANEL)}\n```\nAnything else?",
    f"<think>maybe {{\"panels\": 0}} no</think>{reply(PANEL)}",
    json.dumps([PANEL]),
    json.dumps({"plan": {"panels": [PANEL]}}),
    f'{{"note": "first object"}} then {reply(PANEL)}',
])
def test_tolerant_parsing(text):
    plan = parse_reply(text, Request(count=1, names=("fox",)))
    assert [p.prompt for p in plan.panels] == ["wide shot of a fox"]


@pytest.mark.parametrize("text, problem", [
    ("", "the reply was empty"),
    ("no json here", "the reply holds no JSON object; answer with JSON only"),
    ('{"pannels": []}', 'the reply must be one JSON object with a "panels" list'),
    (reply(PANEL, PANEL), "panels: expected exactly 1 panels, got 2"),
    (reply({"prompt": " ", "caption": "", "characters": []}), "panels[0].prompt: must not be empty"),
    (reply({"prompt": "x", "characters": []}), "panels[0].caption: required field is missing"),
    (reply({"prompt": "x", "caption": "", "characters": "fox"}), "panels[0].characters: input should be a valid list"),
    (reply({**PANEL, "characters": ["wolf"]}),
     "panels[0].characters[0]: 'wolf' is not in the character sheet (use only: fox)"),
])
def test_problems_are_named(text, problem):
    with pytest.raises(BadReply) as caught:
        parse_reply(text, Request(count=1, names=("fox",)))
    assert caught.value.problems[0] == problem


def test_names_are_matched_without_case_and_deduplicated():
    plan = parse_reply(reply({**PANEL, "characters": ["Fox", "fox "]}), Request(count=1, names=("fox",)))
    assert plan.panels[0].characters == ["fox"]


def test_locked_slots_are_replaced_before_checking():
    locked = {"prompt": "kept", "caption": "kept", "characters": []}
    plan = parse_reply(reply(PANEL, {"garbage": True}), Request(count=2, names=("fox",), locked={1: locked}))
    assert plan.panels[1].prompt == "kept"


def test_proposals_only_when_asked():
    text = reply({**PANEL, "characters": ["hero"]}, style={"prefix": " ink ,  wash "},
                 characters={"hero": "a tall woman in red"})
    plan = parse_reply(text, Request(count=1, propose_style=True, propose_characters=True))
    assert plan.style is not None and plan.style.prefix == "ink , wash"
    assert plan.characters == {"hero": "a tall woman in red"}
    with pytest.raises(BadReply, match="the character sheet is empty: use"):
        parse_reply(text, Request(count=1))
    plan = parse_reply(reply({**PANEL, "characters": ["fox"]}, style={"prefix": "ink"}),
                       Request(count=1, names=("fox",)))
    assert plan.style is None and plan.characters is None


def test_schema_follows_the_request():
    schema = reply_schema(Request(count=4, names=("fox", "girl")))
    assert schema["properties"]["panels"]["minItems"] == schema["properties"]["panels"]["maxItems"] == 4
    assert schema["$defs"]["PanelPlan"]["properties"]["characters"]["items"]["enum"] == ["fox", "girl"]
    assert set(schema["properties"]) == {"panels"} and "StylePlan" not in schema["$defs"]
    schema = reply_schema(Request(count=2, propose_style=True, propose_characters=True))
    assert schema["required"] == ["panels", "style", "characters"]
    assert schema["properties"]["style"]["$ref"] == "#/$defs/StylePlan"


def test_extract_json_skips_broken_braces_quickly():
    text = "{" * 5000 + reply(PANEL)
    assert extract_json(text)["panels"][0] == PANEL


def test_redaction():
    keep_secret("sk-redaction-test-key")
    assert redact("key sk-redaction-test-key, Authorization: Bearer abc.def)") == (
        "key ***, Authorization: Bearer ***)")
    assert describe("a\n  b " + "x" * 300, limit=10) == "a b xxxxx…"


def test_retry_after_and_backoff(monkeypatch):
    assert retry_after({"Retry-After": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after(None) is None
    policy = RetryPolicy(backoff=1.0, max_backoff=3.0)
    assert 0.5 <= policy.delay(1) <= 1.0 and 1.0 <= policy.delay(2) <= 2.0 and 1.5 <= policy.delay(5) <= 3.0
    assert policy.delay(3, server_asked=7.0) == 7.0
    monkeypatch.setenv("STORYBOARD_PLAN_BACKOFF", "0")
    assert RetryPolicy.from_env(retries=2) == RetryPolicy(retries=2, backoff=0.0)


# --------------------------------------------------------------------------- story.py


def test_a_story_without_panels_is_valid_for_planning_only(write_story):
    path = write_story("title: Snow\noutline: A fox.\n")
    with pytest.raises(StoryError, match="panels: required field is missing"):
        load_story(path)
    document = load_document(path, require_panels=False)
    assert document.data["title"] == "Snow" and document.story.panels == []
    draft = story_from_yaml("title: Snow\npanels:\n", require_panels=False)
    assert draft.panels == []


def test_other_problems_are_still_caught_without_panels(write_story):
    path = write_story("title: Snow\nrender:\n  width: 100\n")
    with pytest.raises(StoryError) as caught:
        load_document(path, require_panels=False)
    assert str(caught.value) == f"{path}:3: render.width: must be a multiple of 8 between 64 and 2048 (got 100)"
    with pytest.raises(StoryError, match="panels\\[0\\].characters\\[0\\]: character 'fox' is not defined"):
        story_from_yaml("title: x\npanels:\n  - prompt: a\n    characters: [fox]\n", require_panels=False)


def test_locked_and_planned_by_round_trip(write_story):
    text = ("title: Snow\nplanned_by: {provider: dashscope, model: qwen-plus}\npanels:\n"
            "  - prompt: a fox   # mine\n    locked: true\n")
    path = write_story(text)
    story = load_story(path)
    assert story.panels[0].locked is True and story.planned_by.model == "qwen-plus"
    save_document(path, load_document(path))
    assert path.read_text(encoding="utf-8") == text
    with pytest.raises(StoryError, match=r"line 2: planned_by.modle: unknown field \(did you mean 'model'\?\)"):
        story_from_yaml("title: x\nplanned_by: {provider: a, modle: b}\npanels: [{prompt: a}]\n")


def test_short_keys_are_masked_where_they_stand_alone():
    keep_secret("abc")
    assert redact("key abc rejected; abcdef and xabc stay") == "key *** rejected; abcdef and xabc stay"


def test_urls_are_shown_without_credentials():
    from storyboard.plan.backend import shown_url

    assert shown_url("https://user:pw@example.com:8443/v1?key=secret") == "https://example.com:8443/v1"
    assert shown_url("http://127.0.0.1:11434/v1") == "http://127.0.0.1:11434/v1"
