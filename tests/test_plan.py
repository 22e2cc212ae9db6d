"""`storyboard plan` against a real HTTP server on 127.0.0.1 speaking DashScope's and OpenAI's wire formats.

No SDK function is patched: the dashscope SDK is pointed at the server through its own setting
(`dashscope.base_http_api_url`, or DASHSCOPE_HTTP_BASE_URL in a subprocess), the openai SDK through --base-url.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import dashscope
import pytest
from chat_server import DASHSCOPE_PATH, OPENAI_PATH, ChatServer, Cut, Drop, Fail, Hang, Raw, Say, Trickle

from storyboard.cli import main
from storyboard.story import load_story

KEY = "sk-test-0123456789abcdef"

STORY = """\
# The fox and the girl, a test story.
title: The fox and the girl   # working title
outline: |
  A girl finds a fox in the snow.
  They become friends.

style:
  # painted look
  prefix: "watercolor, soft light"
  negative: "blurry"

characters:
  fox: "a small red fox"
  girl: "a girl in a blue coat"

render:
  width: 64
  height: 64
  seed: 7

# Panels: the second one is final.
panels:
  - prompt: "wide shot of a snowy forest"
    caption: It snowed.
    characters: [fox]
    seed: 99
  - prompt: 'close-up of the girl, smiling'   # keep this one
    caption: "She smiled."
    characters: [girl]
    locked: true
  - prompt: the fox and the girl walk away
    caption: The end.
"""
LOCKED_TEXT = """\
  - prompt: 'close-up of the girl, smiling'   # keep this one
    caption: "She smiled."
    characters: [girl]
    locked: true
"""


def plan_json(count: int, *, names: tuple[str, ...] = ("fox",), caption: str = "caption {i}",
              **extra: object) -> str:
    panels = [{"prompt": f"medium shot {i} of the fox in the snow", "caption": caption.format(i=i),
               "characters": list(names)} for i in range(count)]
    return json.dumps({"panels": panels, **extra}, ensure_ascii=False)


@dataclass
class Provider:
    name: str
    args: list[str]
    server: str  # how errors name the server
    key_env: str
    path: str

    @property
    def who(self) -> str:
        return f"{self.name} qwen-plus"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("DASHSCOPE_API_KEY", "DASHSCOPE_API_KEY_FILE_PATH", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(dashscope, "api_key", None)
    monkeypatch.setenv("STORYBOARD_PLAN_BACKOFF", "0")


@pytest.fixture
def chat():
    server = ChatServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["dashscope", "openai"])
def provider(request, chat, monkeypatch) -> Provider:
    if request.param == "dashscope":
        monkeypatch.setattr(dashscope, "base_http_api_url", chat.dashscope_url)
        monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
        return Provider("dashscope", ["--provider", "dashscope"], "DashScope", "DASHSCOPE_API_KEY", DASHSCOPE_PATH)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return Provider("openai", ["--provider", "openai", "--base-url", chat.openai_url, "--model", "qwen-plus"],
                    chat.openai_url, "OPENAI_API_KEY", OPENAI_PATH)


@pytest.fixture
def story(tmp_path) -> Path:
    path = tmp_path / "fox.yaml"
    path.write_text(STORY, encoding="utf-8")
    return path


def run(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def asking(provider: Provider, count: int = 3, locked: int = 1) -> str:
    return f"asking {provider.who} for {count} panels" + (f" ({locked} locked)" if locked else "") + "...\n"


# --------------------------------------------------------------------------- the happy path


def test_plan_writes_panels_and_keeps_everything_else(capsys, chat, provider, story):
    chat.add(Say(plan_json(3, names=("fox", "girl"))))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert (code, err) == (0, asking(provider))
    assert out == f"planned 3 panels (1 locked kept) with {provider.who} → {story}\n"

    text = story.read_text(encoding="utf-8")
    planned = load_story(story)
    assert [p.prompt for p in planned.panels] == [
        "medium shot 0 of the fox in the snow", "close-up of the girl, smiling", "medium shot 2 of the fox in the snow"]
    assert [p.caption for p in planned.panels] == ["caption 0", "She smiled.", "caption 2"]
    assert planned.panels[0].characters == ["fox", "girl"]
    assert planned.panels[0].seed == 99  # a field the plan is not about stays
    assert planned.planned_by is not None and (planned.planned_by.provider, planned.planned_by.model) == (
        provider.name, "qwen-plus")
    assert LOCKED_TEXT in text
    # everything above the panels is untouched, and every comment line is still there, in order
    assert text.startswith(STORY.split("# Panels:")[0])
    lines = text.splitlines()
    positions = [lines.index(line) for line in STORY.splitlines() if "#" in line]
    assert positions == sorted(positions)
    # quoting follows what the user wrote: the first panel's prompt was double-quoted
    assert '  - prompt: "medium shot 0 of the fox in the snow"' in text
    assert "planned_by: {provider: " + provider.name + ", model: qwen-plus}\n\n# Panels: the second one is final.\n" \
        "panels:\n" in text

    (request,) = chat.requests
    assert request.path == provider.path
    assert request.headers["authorization"] == f"Bearer {KEY}"
    if provider.name == "dashscope":
        assert request.body["model"] == "qwen-plus"
        assert request.body["parameters"]["result_format"] == "message"
        assert request.body["parameters"]["response_format"] == {"type": "json_object"}
    else:
        assert request.body["model"] == "qwen-plus"
        assert request.body["response_format"] == {"type": "json_object"}
    system, user = request.messages
    assert system["role"] == "system" and "JSON" in system["content"]
    assert "Title: The fox and the girl" in user["content"]
    assert "A girl finds a fox in the snow." in user["content"]
    assert "watercolor, soft light" in user["content"]
    assert "- fox: a small red fox" in user["content"]
    assert "Number of panels: 3" in user["content"]
    assert ('panels[1] = {"prompt": "close-up of the girl, smiling", "caption": "She smiled.", '
            '"characters": ["girl"]}') in user["content"]
    schema = json.loads(user["content"].split("JSON schema:\n", 1)[1])
    assert schema["properties"]["panels"]["minItems"] == schema["properties"]["panels"]["maxItems"] == 3
    assert schema["$defs"]["PanelPlan"]["properties"]["characters"]["items"]["enum"] == ["fox", "girl"]
    assert "style" not in schema["properties"]  # the story has a style: none is asked for


def test_planned_story_builds(capsys, chat, provider, story, tmp_path):
    chat.add(Say(plan_json(5)))
    assert run(capsys, "plan", story, *provider.args, "--panels", 5)[0] == 0
    code, out, err = run(capsys, "build", story, "--renderer", "draft", "--out", tmp_path / "out")
    assert code == 0, err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["panels"]) == 5
    assert manifest["planned_by"] == {"provider": provider.name, "model": "qwen-plus"}


def test_fenced_json_with_chatter_and_thinking(capsys, chat, provider, story):
    reply = ("<think>The user wants {panels}... let me think</think>Sure! Here is your plan {as asked}:\n"
             f"```json\n{plan_json(3)}\n```\nLet me know if you want changes.")
    chat.add(Say(reply))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert (code, err) == (0, asking(provider))
    assert len(chat.requests) == 1
    assert load_story(story).panels[2].prompt == "medium shot 2 of the fox in the snow"


def test_default_count_is_the_story_s_and_panels_flag_changes_it(capsys, chat, provider, story):
    chat.add(Say(plan_json(2)))
    code, out, err = run(capsys, "plan", story, *provider.args, "--panels", 2)
    assert code == 0, err
    text = story.read_text(encoding="utf-8")
    assert len(load_story(story).panels) == 2
    assert LOCKED_TEXT in text and "The end." not in text


# --------------------------------------------------------------------------- repairs


def test_wrong_count_then_a_good_repair(capsys, chat, provider, story):
    chat.add(Say(plan_json(2)), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 0
    assert err == asking(provider) + (
        "the reply is not a valid plan (panels: expected exactly 3 panels, got 2); "
        "asking qwen-plus to fix it (repair 1 of 2)\n")
    first, second = chat.requests
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[:2] == first.messages
    assert second.messages[2]["content"] == plan_json(2)
    assert "- panels: expected exactly 3 panels, got 2" in second.messages[3]["content"]
    assert len(load_story(story).panels) == 3


def test_missing_fields_and_unknown_characters_are_sent_back(capsys, chat, provider, story):
    bad = json.dumps({"panels": [
        {"prompt": "a", "caption": "b", "characters": ["wolf"]},
        {"prompt": "locked slot: anything goes"},
        {"caption": "no prompt", "characters": []},
    ]})
    chat.add(Say(bad), Say(plan_json(3, names=("FOX",))))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 0, err
    repair = chat.requests[1].messages[3]["content"]
    assert "- panels[2].prompt: required field is missing" in repair
    assert "panels[1]" not in repair  # the locked slot's content is discarded, never checked
    chat.script.clear()
    # the second reply named "FOX": the sheet says "fox"
    assert load_story(story).panels[0].characters == ["fox"]


def test_unknown_character_is_a_problem(capsys, chat, provider, story):
    chat.add(Say(plan_json(3, names=("wolf",))), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 0
    assert ("panels[0].characters[0]: 'wolf' is not in the character sheet (use only: fox, girl)"
            in chat.requests[1].messages[3]["content"])


def test_never_valid_gives_one_line_and_leaves_the_file_alone(capsys, chat, provider, story):
    chat.add(Say("I cannot do that."), Say(plan_json(1)), Say("```json\n{\"panels\": 3}\n```"))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 1 and out == ""
    assert err.splitlines()[-1] == (
        f"Error: {provider.who} gave no valid plan in 3 replies: panels: input should be a valid list")
    assert len(chat.requests) == 3
    assert story.read_text(encoding="utf-8") == STORY


# --------------------------------------------------------------------------- failures of the service


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_error_then_fine(capsys, chat, provider, story, status):
    chat.add(Fail(status), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 2 and lines[1].endswith("; retrying in 0.0 s (attempt 2 of 4)")
    assert f"HTTP {status}" in lines[1]
    assert len(chat.requests) == 2


def test_rate_limited_until_giving_up(capsys, chat, provider, story):
    chat.add(*[Fail(429)] * 3)
    code, out, err = run(capsys, "plan", story, *provider.args, "--retries", 2)
    assert code == 1
    detail = ("HTTP 429 Throttling.RateQuota: Requests rate limit exceeded, please try again later."
              if provider.name == "dashscope"
              else "HTTP 429 rate_limit_exceeded: Rate limit reached, please try again later.")
    assert err.splitlines()[-1] == f"Error: {provider.server} is rate limiting ({detail}); gave up after 3 attempts"
    assert len(chat.requests) == 3
    assert story.read_text(encoding="utf-8") == STORY


def test_a_server_asking_for_a_long_pause_gets_a_clear_error(capsys, chat, provider, story):
    chat.add(Fail(429, headers={"Retry-After": "3600"}), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 1
    assert err.splitlines()[-1].endswith("; the server asks to wait 3600 s, try again later")
    assert len(chat.requests) == 1


def test_retry_after_from_the_server_is_honoured(capsys, chat, provider, story):
    chat.add(Fail(503, headers={"Retry-After": "0.2"}), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 0
    assert "retrying in 0.2 s (attempt 2 of 4)" in err


@pytest.mark.parametrize("status", [401, 403])
def test_bad_key_fails_at_once_naming_the_variable(capsys, chat, provider, story, status):
    chat.add(Fail(status), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 1 and out == ""
    last = err.splitlines()[-1]
    if status == 401:
        said = ("InvalidApiKey: Invalid API-key provided." if provider.name == "dashscope"
                else "invalid_api_key: Incorrect API key provided.")
        assert last == f"Error: {provider.server} rejected the API key (HTTP 401 {said}); check {provider.key_env}"
    else:
        assert last.startswith(f"Error: {provider.server} refused access (HTTP 403 ")
        assert last.endswith(f"); check {provider.key_env} and that it may use qwen-plus")
    assert len(chat.requests) == 1  # no retries
    assert story.read_text(encoding="utf-8") == STORY


def test_the_key_never_shows_even_when_the_server_echoes_it(capsys, chat, provider, story):
    chat.add(Fail(500, echo_auth=True), Fail(401, echo_auth=True))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 1
    assert "Bearer ***" in err
    assert KEY not in out + err
    assert KEY[3:] not in out + err


def test_the_key_never_reaches_the_story(capsys, chat, provider, story):
    chat.add(Say(plan_json(3, caption="leaked {{authorization}} {i}")))
    code, out, err = run(capsys, "plan", story, *provider.args, "--dry-run")
    assert code == 0
    assert KEY not in out + err and "leaked Bearer *** 0" in out
    chat.add(Say(plan_json(3, caption="leaked {{authorization}} {i}")))
    assert run(capsys, "plan", story, *provider.args)[0] == 0
    text = story.read_text(encoding="utf-8")
    assert KEY not in text and "leaked Bearer *** 0" in text


def test_missing_key_is_an_immediate_error(capsys, chat, story, monkeypatch):
    monkeypatch.setattr(dashscope, "base_http_api_url", chat.dashscope_url)
    code, out, err = run(capsys, "plan", story)
    assert (code, out, err) == (1, "", "Error: no DashScope API key: set DASHSCOPE_API_KEY\n")
    code, out, err = run(capsys, "plan", story, "--provider", "openai", "--model", "gpt-4o-mini")
    assert (code, out) == (1, "")
    assert err.startswith("Error: no OpenAI API key: set OPENAI_API_KEY")
    assert chat.requests == []
    assert story.read_text(encoding="utf-8") == STORY


def test_openai_provider_needs_a_model(capsys, chat, story):
    code, out, err = run(capsys, "plan", story, "--provider", "openai", "--base-url", chat.openai_url)
    assert code == 2
    assert "Error: --provider openai needs --model" in err
    assert chat.requests == []


def test_local_openai_server_needs_no_key(capsys, chat, story, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", chat.openai_url)
    chat.add(Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, "--provider", "openai", "--model", "qwen2.5")
    assert code == 0, err
    assert "authorization" not in chat.requests[0].headers
    assert out == f"planned 3 panels (1 locked kept) with openai qwen2.5 → {story}\n"


def test_openai_server_without_json_mode(capsys, chat, story, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    chat.add(Fail(400, message="Unknown parameter: 'response_format'"), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, "--provider", "openai", "--model", "m", "--base-url", chat.openai_url)
    assert code == 0, err
    assert "response_format" in chat.requests[0].body and "response_format" not in chat.requests[1].body


def test_unknown_model_is_not_retried(capsys, chat, provider, story):
    chat.add(Fail(400 if provider.name == "dashscope" else 404), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 1
    if provider.name == "dashscope":
        assert err.splitlines()[-1] == ("Error: DashScope refused the request for qwen-plus "
                                        "(HTTP 400 InvalidParameter: Model not exist.)")
    else:
        assert err.splitlines()[-1].startswith(f"Error: {chat.openai_url} answered HTTP 404 ")
    assert len(chat.requests) == 1


def test_a_web_page_instead_of_an_api(capsys, chat, provider, story):
    chat.add(Raw(200, b"<html><body>Welcome to nginx!</body></html>", "text/html"))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 1
    assert err.splitlines()[-1].endswith("is the base URL right?")
    assert len(chat.requests) == 1


def test_a_server_that_never_answers(capsys, chat, provider, story):
    chat.add(Hang(30), Hang(30))
    code, out, err = run(capsys, "plan", story, *provider.args, "--timeout", 0.3, "--retries", 1)
    assert code == 1
    assert err.splitlines()[-1].endswith(" 0.3 s; gave up after 2 attempts")
    assert len(chat.requests) == 2
    assert story.read_text(encoding="utf-8") == STORY


def test_a_hang_then_an_answer(capsys, chat, provider, story):
    chat.add(Hang(30), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args, "--timeout", 0.3)
    assert code == 0, err
    assert "retrying in 0.0 s (attempt 2 of 4)" in err


def test_a_server_that_trickles_forever_is_cut_off(capsys, chat, provider, story):
    chat.add(Trickle(0.05))
    code, out, err = run(capsys, "plan", story, *provider.args, "--timeout", 0.3, "--retries", 0)
    assert code == 1
    assert err.splitlines()[-1] == (
        f"Error: {provider.who} did not finish answering within 0.3 s; gave up after 1 attempt")


def test_dropped_connections_are_retried(capsys, chat, provider, story):
    # the dashscope SDK itself resends once on a dropped connection, so it sees two drops as one failure
    drops = [Drop(), Drop()] if provider.name == "dashscope" else [Drop()]
    chat.add(*drops, Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 0, err
    assert "the server closed the connection without answering" in err


def test_a_reply_cut_off_halfway_is_retried(capsys, chat, provider, story):
    chat.add(Cut(), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 0, err
    assert "retrying in 0.0 s (attempt 2 of 4)" in err
    assert len(chat.requests) == 2


def test_nothing_listening(capsys, provider, story, monkeypatch, chat):
    port = chat.port
    chat.stop()
    code, out, err = run(capsys, "plan", story, *provider.args, "--retries", 1)
    assert code == 1
    assert err.splitlines()[-1].endswith("(connection refused); gave up after 2 attempts")
    assert f"127.0.0.1:{port}" in err.splitlines()[-1]


# --------------------------------------------------------------------------- the story file


def test_chinese_both_ways(capsys, chat, provider, tmp_path):
    path = tmp_path / "zh.yaml"
    path.write_text(textwrap.dedent("""\
        # 小王子
        title: 小王子
        language: zh
        outline: 飞行员在沙漠里遇见了小王子。
        style:
          prefix: "watercolor"
        characters:
          little prince: "a small boy with golden hair"
        panels:
          - prompt: the little prince in the desert
            caption: 沙漠。
            characters: [little prince]
        """), encoding="utf-8")
    chat.add(Say(plan_json(2, names=("little prince",), caption="第{i}格：他请飞行员画一只羊。")))
    code, out, err = run(capsys, "plan", path, *provider.args, "--panels", 2)
    assert code == 0, err
    user = chat.requests[0].messages[1]["content"]
    assert "Title: 小王子" in user and "飞行员在沙漠里遇见了小王子。" in user
    assert "Language of the captions: Chinese (zh)" in user
    text = path.read_text(encoding="utf-8")
    assert "caption: 第0格：他请飞行员画一只羊。" in text
    assert text.startswith("# 小王子\ntitle: 小王子\n")
    assert load_story(path).panels[1].caption == "第1格：他请飞行员画一只羊。"


def test_a_story_with_only_a_title_and_outline(capsys, chat, provider, tmp_path):
    path = tmp_path / "new.yaml"
    original = "# A new story\ntitle: Snow\noutline: |\n  A fox in the snow.\n\n# to do: more\n"
    path.write_text(original, encoding="utf-8")
    reply = plan_json(8, names=("fox",), style={"prefix": "ink wash", "negative": "blurry"},
                      characters={"fox": "a small red fox with a white tail"})
    chat.add(Say(reply))
    code, out, err = run(capsys, "plan", path, *provider.args)
    assert code == 0, err
    assert err == asking(provider, 8, 0)
    assert out == (f"planned 8 panels with {provider.who} → {path}; "
                   "added style, characters, render: review them\n")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(
        "# A new story\ntitle: Snow\noutline: |\n  A fox in the snow.\n\n"
        "style:\n  prefix: ink wash\n  negative: blurry\n\n"
        "characters:\n  fox: a small red fox with a white tail\n\n"
        "render:\n  model: stable-diffusion-v1-5/stable-diffusion-v1-5\n  width: 512\n")
    assert text.endswith("    characters: [fox]\n\n# to do: more\n")
    planned = load_story(path)
    assert len(planned.panels) == 8 and planned.style.prefix == "ink wash"
    schema = json.loads(chat.requests[0].messages[1]["content"].split("JSON schema:\n", 1)[1])
    assert schema["required"] == ["panels", "style", "characters"]


def test_bare_panels_key_is_filled_in(capsys, chat, provider, tmp_path):
    path = tmp_path / "bare.yaml"
    path.write_text("title: Snow\nstyle: {prefix: ink}\ncharacters: {fox: a fox}\npanels:\n", encoding="utf-8")
    chat.add(Say(plan_json(2)))
    code, out, err = run(capsys, "plan", path, *provider.args, "--panels", 2)
    assert code == 0, err
    assert path.read_text(encoding="utf-8").endswith(
        "panels:\n  - prompt: medium shot 0 of the fox in the snow\n    caption: caption 0\n    characters: [fox]\n"
        "  - prompt: medium shot 1 of the fox in the snow\n    caption: caption 1\n    characters: [fox]\n")


def test_invalid_story_is_rejected_before_any_request(capsys, chat, provider, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("title: Snow\noutline: x\nstlye:\n  prefix: ink\n", encoding="utf-8")
    code, out, err = run(capsys, "plan", path, *provider.args)
    assert (code, out, err) == (1, "", f"Error: {path}:3: stlye: unknown field (did you mean 'style'?)\n")
    assert chat.requests == []


def test_a_locked_panel_beyond_the_count(capsys, chat, provider, story):
    code, out, err = run(capsys, "plan", story, *provider.args, "--panels", 1)
    assert (code, out) == (1, "")
    assert err == (f"Error: {story}: panel 2 is locked, so the story needs at least 2 panels "
                   "(got --panels 1); unlock it or plan more panels\n")
    assert chat.requests == []


def test_dry_run_prints_and_writes_nothing(capsys, chat, provider, story):
    chat.add(Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args, "--dry-run")
    assert code == 0
    assert story.read_text(encoding="utf-8") == STORY
    assert out.startswith("planned_by: {provider: " + provider.name + ", model: qwen-plus}\n")
    assert '  - prompt: "medium shot 0 of the fox in the snow"\n' in out
    assert LOCKED_TEXT in out
    assert err.splitlines()[-1] == (
        f"planned 3 panels (1 locked kept) with {provider.who} (dry run: {story} not changed)")


def test_file_edited_while_planning_is_not_overwritten(capsys, chat, provider, story):
    def edit() -> None:
        story.write_text(STORY + "# edited\n", encoding="utf-8")

    chat.add(Say(plan_json(3), before=edit))
    code, out, err = run(capsys, "plan", story, *provider.args)
    assert code == 1
    assert err.splitlines()[-1] == (
        f"Error: {story} changed while the plan was being written; nothing was written, run `storyboard plan` again")
    assert story.read_text(encoding="utf-8") == STORY + "# edited\n"


def test_replanning_keeps_the_file_stable(capsys, chat, provider, story):
    chat.add(Say(plan_json(3)), Say(plan_json(3)))
    assert run(capsys, "plan", story, *provider.args)[0] == 0
    once = story.read_text(encoding="utf-8")
    assert run(capsys, "plan", story, *provider.args)[0] == 0
    assert story.read_text(encoding="utf-8") == once


# --------------------------------------------------------------------------- a real process


def test_subprocess_with_sdk_environment(chat, story, tmp_path):
    """DASHSCOPE_HTTP_BASE_URL is read by the SDK at import: only a fresh process shows that it is respected."""
    chat.add(Hang(5), Fail(401, echo_auth=True))
    env = {**os.environ, "DASHSCOPE_HTTP_BASE_URL": chat.dashscope_url, "DASHSCOPE_API_KEY": KEY,
           "STORYBOARD_PLAN_BACKOFF": "0", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", "storyboard", "plan", str(story), "--timeout", "0.5"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == (
        "asking dashscope qwen-plus for 3 panels (1 locked)...\n"
        # the SDK's own timeout, not the backstop deadline: importing the SDK is not counted against --timeout
        "DashScope did not answer within 0.5 s; retrying in 0.0 s (attempt 2 of 4)\n"
        "Error: DashScope rejected the API key (HTTP 401 InvalidApiKey: rejected; you sent Authorization: "
        "Bearer ***); check DASHSCOPE_API_KEY\n")
    assert KEY not in done.stdout + done.stderr
    assert story.read_text(encoding="utf-8") == STORY
    assert chat.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_plan_does_not_import_heavy_modules():
    code = ("import sys, storyboard.cli, storyboard.plan.planner, storyboard.plan.document, storyboard.retry\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'dashscope', 'openai') if m in sys.modules]\n"
            "print(','.join(heavy))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, ""), done.stderr


def test_base_url_overrides_the_dashscope_sdk_setting(capsys, chat, story, monkeypatch):
    monkeypatch.setattr(dashscope, "base_http_api_url", "http://127.0.0.1:9/api/v1")  # nothing listens there
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    chat.add(Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, "--base-url", chat.dashscope_url, "--model", "qwen-max")
    assert code == 0, err
    assert chat.requests[0].path == DASHSCOPE_PATH and chat.requests[0].body["model"] == "qwen-max"
    assert load_story(story).planned_by.model == "qwen-max"


@pytest.mark.parametrize("args, message", [
    (["--panels", "0"], "Invalid value for '--panels': 0 is not in the range 1<=x<=500."),
    (["--timeout", "0"], "Invalid value for '--timeout': 0.0 is not in the range x>0."),
    (["--provider", "ollama"], "Invalid value for '--provider': 'ollama' is not one of 'dashscope', 'openai'."),
])
def test_usage_errors(capsys, story, args, message):
    code, out, err = run(capsys, "plan", story, *args)
    assert code == 2 and err.splitlines()[-1] == f"Error: {message}"
    assert story.read_text(encoding="utf-8") == STORY


def test_thinking_models_are_asked_to_not_think(capsys, chat, provider, story):
    refusal = "parameter.enable_thinking must be set to false for non-streaming calls"
    chat.add(Fail(400, code="InvalidParameter", message=refusal), Say(plan_json(2)), Say(plan_json(3)))
    assert run(capsys, "plan", story, *provider.args)[0] == 0
    first, second, repair = chat.requests  # the setting sticks for the repair round
    for request in (second, repair):
        parameters = request.body["parameters"] if provider.name == "dashscope" else request.body
        assert parameters["enable_thinking"] is False
    assert "enable_thinking" not in (first.body["parameters"] if provider.name == "dashscope" else first.body)


def test_a_story_with_more_panels_than_a_plan_holds_says_so_without_blaming_an_option(capsys, chat, tmp_path):
    story = tmp_path / "long.yaml"
    story.write_text("title: Long\npanels:\n" + "".join(f"  - prompt: p{i}\n" for i in range(501)), encoding="utf-8")
    before = story.read_bytes()
    code, out, err = run(capsys, "plan", story, "--provider", "openai", "--base-url", chat.openai_url,
                         "--model", "m")
    assert (code, out) == (1, "")
    assert err == f"Error: {story} has 501 panels; a plan has at most 500 (choose how many with --panels N)\n"
    assert chat.requests == [] and story.read_bytes() == before


def test_plan_keeps_crlf_line_endings_and_a_bom(capsys, chat, provider, tmp_path):
    unix, windows = tmp_path / "unix.yaml", tmp_path / "windows.yaml"
    unix.write_bytes(STORY.encode())
    windows.write_bytes(b"\xef\xbb\xbf" + STORY.replace("\n", "\r\n").encode())
    for path in (unix, windows):
        chat.add(Say(plan_json(3, names=("fox", "girl"))))
        assert run(capsys, "plan", path, *provider.args)[0] == 0
    written = windows.read_bytes()
    assert written.startswith(b"\xef\xbb\xbf") and written.count(b"\n") == written.count(b"\r\n")
    assert written[3:].replace(b"\r\n", b"\n") == unix.read_bytes()


# --------------------------------------------------------------------------- long stories, in parts


def long_fox_story(tmp_path, panels: int = 30, locked: tuple[int, ...] = (2, 30)) -> Path:
    body = STORY.split("# Panels:")[0] + "panels:\n"
    for i in range(1, panels + 1):
        body += f"  - prompt: 'old prompt {i}'\n    caption: Old {i}\n"
        if i in locked:
            body += f"    characters: [girl]   # keep {i}\n    locked: true\n"
    path = tmp_path / "long.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_48_panels_are_planned_in_parts_that_know_the_story_so_far(capsys, chat, provider, tmp_path):
    from storyboard.plan.planner import PART_PANELS

    story = long_fox_story(tmp_path)
    locked_text = [block for block in story.read_text().split("  - ") if "locked: true" in block]
    chat.add(Say(plan_json(PART_PANELS, names=("fox", "girl"), caption="first part {i}")),
             Say(plan_json(48 - PART_PANELS, names=("fox",), caption="second part {i}")))
    code, out, err = run(capsys, "plan", story, *provider.args, "--panels", "48")
    assert code == 0, err
    assert len(chat.requests) == 2
    second = chat.requests[1].messages[-1]["content"]
    assert "This is part 2: panels 25 to 48" in second
    assert "- panel 24: first part 23 [fox, girl]" in second  # the previous part, in brief
    assert "- fox: a small red fox" in second and "- girl: a girl in a blue coat" in second
    assert "panels[5] = " in second  # panel 30, locked, is fixed context in its part
    assert '"minItems": 24' in second

    text = story.read_text()
    for block in locked_text:  # locked panels stay byte for byte
        assert block in text
    panels = load_story(story).panels
    assert len(panels) == 48
    expected = [f"first part {i}" for i in range(24)] + [f"second part {i}" for i in range(24)]
    expected[1], expected[29] = "Old 2", "Old 30"
    assert [p.caption for p in panels] == expected
    assert {name for p in panels for name in p.characters} == {"fox", "girl"}


def test_a_part_that_never_becomes_valid_leaves_the_file_alone(capsys, chat, provider, tmp_path):
    story = long_fox_story(tmp_path, locked=())
    before = story.read_bytes()
    chat.add(Say(plan_json(24)), Say(plan_json(3)), Say(plan_json(3)), Say(plan_json(3)))
    code, out, err = run(capsys, "plan", story, *provider.args, "--panels", "48")
    assert code == 1 and story.read_bytes() == before
    assert "part 2 of 2 (panels 25 to 48)" in err and "expected exactly 24 panels, got 3" in err
    assert len(chat.requests) == 4


def test_parts_follow_the_pages_of_the_story():
    from storyboard.plan.planner import plan_parts

    assert plan_parts(20) == [range(20)]
    assert plan_parts(48) == [range(0, 24), range(24, 48)]
    assert plan_parts(50, per_page=10) == [range(0, 20), range(20, 40), range(40, 50)]  # whole pages per part
    assert plan_parts(100, per_page=40) == [range(0, 24), range(24, 48), range(48, 72), range(72, 96),
                                            range(96, 100)]


def test_the_command_line_cap_is_the_planner_s():
    from storyboard.cli import cli
    from storyboard.plan.planner import MAX_PANELS

    option = next(p for p in cli.commands["plan"].params if p.name == "panels")
    assert option.type.max == MAX_PANELS
