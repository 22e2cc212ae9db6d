"""`--renderer dashscope` and `--renderer a1111` against a real image service on 127.0.0.1 (tests/image_server.py).

No SDK function is patched: the dashscope SDK is pointed at the server through its own setting
(`dashscope.base_http_api_url`, or DASHSCOPE_HTTP_BASE_URL in a subprocess) or --base-url, the A1111 renderer
through --base-url or STORYBOARD_A1111_URL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dashscope
import pytest
from cli_runs import pixel, run
from image_server import (
    CHECKPOINTS,
    SUBMIT_PATH,
    TXT2IMG_PATH,
    Drop,
    Fail,
    Hang,
    ImageServer,
    TaskFails,
    expected_colour,
)

from storyboard.provenance import read_provenance
from storyboard.resolve import resolve
from storyboard.story import load_story

ROOT = Path(__file__).resolve().parent.parent
LITTLE_PRINCE = ROOT / "stories" / "little_prince.yaml"
KEY = "sk-remote-test-0123456789abcdef"
PASSWORD = "pw-remote-test-0123456789"


@dataclass
class Service:
    name: str
    server: ImageServer
    model: str
    secret: str  # what must never show: the API key or the password
    secret_env: str

    def args(self, story: Path, out: Path, *more: object) -> list[str]:
        base = self.server.dashscope_url if self.name == "dashscope" else self.server.root
        return ["build", str(story), "--out", str(out), "--renderer", self.name, "--model", self.model,
                "--base-url", base, *map(str, more)]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("DASHSCOPE_API_KEY", "DASHSCOPE_API_KEY_FILE_PATH", "STORYBOARD_A1111_URL",
                 "STORYBOARD_A1111_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(dashscope, "api_key", None)
    monkeypatch.setenv("STORYBOARD_BACKOFF", "0")
    monkeypatch.setenv("STORYBOARD_POLL_SECONDS", "0.01")


def _serve(name: str, monkeypatch):
    if name == "dashscope":
        server = ImageServer(key=KEY).start()
        monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
        yield Service("dashscope", server, "wan2.2-t2i-flash", KEY, "DASHSCOPE_API_KEY")
    else:
        server = ImageServer(auth=("painter", PASSWORD)).start()
        monkeypatch.setenv("STORYBOARD_A1111_AUTH", f"painter:{PASSWORD}")
        yield Service("a1111", server, "v1-5-pruned-emaonly", PASSWORD, "STORYBOARD_A1111_AUTH")
    server.stop()


@pytest.fixture(params=["dashscope", "a1111"])
def service(request, monkeypatch):
    yield from _serve(request.param, monkeypatch)


@pytest.fixture
def ds_service(monkeypatch):
    yield from _serve("dashscope", monkeypatch)


@pytest.fixture
def webui_service(monkeypatch):
    yield from _serve("a1111", monkeypatch)


@pytest.fixture
def small_story(write_story) -> Path:
    return write_story("""
        title: Two panels
        style:
          prefix: watercolor
          negative: blurry, text
        render:
          width: 64
          height: 64
          steps: 12
          guidance: 5.5
          scheduler: euler_a
          seed: 41
        layout:
          columns: 2
        panels:
          - prompt: a fox in the snow
          - prompt: a girl in a blue coat
            span: 2
            seed: 2000
        """)


# --------------------------------------------------------------------------- the happy path


def test_the_little_prince_builds_and_a_rebuild_sends_nothing(capsys, caplog, service, tmp_path):
    out = tmp_path / "lp"
    code, stdout, stderr = run(capsys, *service.args(LITTLE_PRINCE, out))
    assert code == 0, stderr
    assert stdout.startswith(f"rendered 8, reused 0 ({service.name} renderer)\n")
    assert len(service.server.drawn()) == 8  # no anchor portraits: the service could not read them
    said = [r.getMessage() for r in caplog.records if "character anchors" in r.getMessage()]
    assert said == [f"the {service.name} renderer cannot read character anchors; panels that list characters are "
                    "drawn from their prompts alone (render.consistency: none)"]
    # `info` compares a panel with the story as this renderer draws it (without anchors): nothing has changed.
    code, shown, _ = run(capsys, "info", out / "panels" / "panel-01.png")
    assert code == 0 and "seed:       1234" in shown and "note:" not in shown
    jobs = resolve(load_story(LITTLE_PRINCE), model=service.model)
    for job in jobs:  # the pixels are the ones the server drew for this very prompt and seed
        assert pixel(out / job.file) == expected_colour(job.prompt, job.seed)
    assert (out / "page.png").is_file() and (out / "page.pdf").is_file() and (out / "index.html").is_file()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["renderer"] == service.name
    assert manifest["panels"][0]["identity"] == {"renderer": service.name, "version": "1", "service": service.name,
                                                 "model": service.model,
                                                 **({"sampler": "DPM++ 2M Karras"} if service.name == "a1111"
                                                    else {})}

    before = len(service.server.requests)
    code, stdout, _ = run(capsys, *service.args(LITTLE_PRINCE, out))
    assert code == 0
    assert stdout.startswith(f"rendered 0, reused 8 ({service.name} renderer)\n")
    assert len(service.server.requests) == before  # not even a look at the server's checkpoints


def test_a_rebuild_needs_neither_the_key_nor_the_server(capsys, service, small_story, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert run(capsys, *service.args(small_story, out))[0] == 0
    service.server.stop()
    monkeypatch.delenv(service.secret_env)
    code, stdout, stderr = run(capsys, *service.args(small_story, out))
    assert (code, stderr) == (0, "")
    assert stdout.startswith(f"rendered 0, reused 2 ({service.name} renderer)\n")


def test_an_edited_panel_is_the_only_one_drawn_again(capsys, service, small_story, tmp_path):
    out = tmp_path / "out"
    assert run(capsys, *service.args(small_story, out))[0] == 0
    small_story.write_text(small_story.read_text().replace("a fox in the snow", "a fox on the ice"))
    code, stdout, _ = run(capsys, *service.args(small_story, out))
    assert code == 0 and stdout.startswith(f"rendered 1, reused 1 ({service.name} renderer)\n")
    assert [r.body["input"]["prompt"] if service.name == "dashscope" else r.body["prompt"]
            for r in service.server.drawn()][-1] == "watercolor, a fox on the ice"


def test_dashscope_request_carries_the_story_exactly(capsys, ds_service, small_story, tmp_path):
    assert run(capsys, *ds_service.args(small_story, tmp_path / "out"))[0] == 0
    jobs = resolve(load_story(small_story))
    sent = ds_service.server.drawn()
    assert [r.body for r in sent] == [{
        "model": "wan2.2-t2i-flash",
        "input": {"prompt": job.prompt, "negative_prompt": "blurry, text"},
        "parameters": {"n": 1, "size": f"{job.width}*{job.height}", "seed": job.seed, "prompt_extend": False,
                       "watermark": False},
    } for job in jobs]
    assert [job.width for job in jobs] == [64, 160] and [job.seed for job in jobs] == [41, 2000]
    assert all(r.headers["x-dashscope-async"] == "enable" and r.headers["authorization"] == f"Bearer {KEY}"
               for r in sent)
    downloads = [r for r in ds_service.server.requests if r.path.startswith("/results/")]
    assert len(downloads) == 2 and not any("authorization" in r.headers for r in downloads)


def test_a1111_request_carries_the_story_exactly(capsys, webui_service, small_story, tmp_path):
    assert run(capsys, *webui_service.args(small_story, tmp_path / "out"))[0] == 0
    jobs = resolve(load_story(small_story))
    assert [r.body for r in webui_service.server.drawn()] == [{
        "prompt": job.prompt, "negative_prompt": "blurry, text", "seed": job.seed, "subseed_strength": 0,
        "steps": 12, "cfg_scale": 5.5, "width": job.width, "height": job.height, "sampler_name": "Euler a",
        "batch_size": 1, "n_iter": 1, "send_images": True, "save_images": False,
        "override_settings": {"sd_model_checkpoint": CHECKPOINTS[0]["title"]},
        "override_settings_restore_afterwards": True,
    } for job in jobs]
    assert [r.path for r in webui_service.server.requests] == ["/sdapi/v1/sd-models", TXT2IMG_PATH, TXT2IMG_PATH]


def test_panels_carry_provenance_like_local_ones(capsys, service, small_story, tmp_path):
    out = tmp_path / "out"
    assert run(capsys, *service.args(small_story, out))[0] == 0
    provenance = read_provenance(out / "panels" / "panel-02.png")
    sampler = "Euler a" if service.name == "a1111" else "dashscope"
    assert provenance.parameters == (
        "watercolor, a girl in a blue coat\n"
        "Negative prompt: blurry, text\n"
        f"Steps: 12, Sampler: {sampler}, CFG scale: 5.5, Seed: 2000, Size: 160x64, Model: {service.model}")
    assert provenance.record["renderer"] == service.name and provenance.panel == 2
    if service.name == "a1111":  # what the server says it drew with
        assert provenance.record["info"] == {"server_model": "v1-5-pruned-emaonly", "server_model_hash": "6ce0161689"}
    code, stdout, _ = run(capsys, "info", out / "panels" / "panel-02.png")
    assert code == 0 and f"with the {service.name} renderer" in stdout and "seed:       2000" in stdout


# --------------------------------------------------------------------------- failures


def draw_route(service: Service) -> str:
    return "submit" if service.name == "dashscope" else "txt2img"


def test_rate_limits_server_errors_and_dropped_connections_are_retried(capsys, service, small_story, tmp_path):
    service.server.add(draw_route(service), Fail(429), Fail(503), Fail(500))
    service.server.add("models" if service.name == "a1111" else "poll", Drop())
    code, stdout, stderr = run(capsys, *service.args(small_story, tmp_path / "out"))
    assert code == 0, stderr
    assert stdout.startswith("rendered 2, reused 0")
    assert len(service.server.drawn()) == 5  # 3 failures, then the two panels
    assert stderr.count("retrying in") == 4
    assert "is rate limiting (HTTP 429" in stderr and "Traceback" not in stderr


def test_giving_up_is_one_line_and_leaves_no_page(capsys, service, small_story, tmp_path):
    service.server.add(draw_route(service), *[Fail(503)] * 4)
    out = tmp_path / "out"
    code, _, stderr = run(capsys, *service.args(small_story, out))
    assert code == 1 and stderr.count("\n") == 4 and stderr.splitlines()[-1].startswith("Error: ")
    assert stderr.rstrip().endswith("server error (HTTP 503 ServiceUnavailable: The service is temporarily "
                                    "unavailable.); gave up after 4 attempts" if service.name == "dashscope"
                                    else "server error (HTTP 503 The service is temporarily unavailable.); "
                                         "gave up after 4 attempts")
    assert not (out / "page.png").exists()


def test_a_rejected_key_stops_at_once_naming_the_variable(capsys, service, small_story, tmp_path, monkeypatch):
    monkeypatch.setenv(service.secret_env, "sk-wrong-key-9876543210" if service.name == "dashscope"
                       else "painter:wrong-password-123")
    code, stdout, stderr = run(capsys, *service.args(small_story, tmp_path / "out"))
    assert (code, stdout) == (1, "")
    if service.name == "dashscope":
        assert stderr == (f"Error: DashScope at {service.server.dashscope_url} rejected the API key (HTTP 401 "
                          "InvalidApiKey: Invalid API-key provided.); check DASHSCOPE_API_KEY\n")
    else:
        assert stderr == (f"Error: the A1111 server at {service.server.root} rejected the API key (HTTP 401 "
                          "Incorrect username or password); check STORYBOARD_A1111_AUTH\n")
    assert len(service.server.requests) == 1  # never retried
    assert "wrong" not in stderr


def test_no_dashscope_key_is_an_error_before_any_request(capsys, small_story, tmp_path):
    server = ImageServer(key=KEY).start()
    try:
        code, _, stderr = run(capsys, "build", small_story, "--out", tmp_path / "out", "--renderer", "dashscope",
                              "--model", "wan2.2-t2i-flash", "--base-url", server.dashscope_url)
        assert (code, stderr) == (1, "Error: no DashScope API key: set DASHSCOPE_API_KEY\n")
        assert server.requests == []
    finally:
        server.stop()


def test_the_key_never_shows_even_when_the_server_echoes_it(capsys, service, small_story, tmp_path):
    service.server.add(draw_route(service), Fail(503, echo_auth=True), Fail(400, echo_auth=True))
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, *service.args(small_story, out))
    assert code == 1 and "you sent Authorization: " in stderr and "Bearer ***" not in stdout
    assert service.secret not in stdout + stderr
    service.server.add(draw_route(service), Fail(503, echo_auth=True))
    code, stdout, stderr = run(capsys, *service.args(small_story, out))
    assert code == 0, stderr
    assert service.secret not in stdout + stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert service.secret.encode() not in path.read_bytes(), path


def test_a_hung_server_meets_the_panel_deadline(capsys, service, small_story, tmp_path):
    service.server.add(draw_route(service), Hang(30))
    started = time.monotonic()
    code, _, stderr = run(capsys, *service.args(small_story, tmp_path / "out", "--timeout", 1))
    assert time.monotonic() - started < 8
    assert code == 1
    where = f"DashScope at {service.server.dashscope_url}" if service.name == "dashscope" else \
        f"the A1111 server at {service.server.root}"
    assert stderr.splitlines()[-1] == (
        f"Error: {where} did not answer {'when asked to draw' if service.name == 'dashscope' else 'with a picture'}"
        f" for panel 1 within 1 s; no time left for another try within 1 s")


def test_a_dashscope_task_that_never_ends_meets_the_deadline(capsys, small_story, tmp_path, monkeypatch):
    server = ImageServer(key=KEY, polls=10**6).start()
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    try:
        code, _, stderr = run(capsys, *Service("dashscope", server, "wan2.2-t2i-flash", KEY, "").args(
            small_story, tmp_path / "out", "--timeout", 0.5))
    finally:
        server.stop()
    assert code == 1
    assert stderr == (f"Error: DashScope at {server.dashscope_url} had not finished panel 1 within 0.5 s "
                      "(task RUNNING); try a longer --timeout\n")


def test_a_failed_dashscope_task_is_one_line(capsys, ds_service, small_story, tmp_path):
    ds_service.server.add("poll", TaskFails())
    code, _, stderr = run(capsys, *ds_service.args(small_story, tmp_path / "out"))
    assert (code, stderr) == (1, f"Error: DashScope at {ds_service.server.dashscope_url} could not draw panel 1 "
                                 "(task FAILED: DataInspectionFailed: Output data may contain inappropriate "
                                 "content.)\n")


def test_a_poll_that_fails_once_is_retried_without_drawing_again(capsys, ds_service, small_story, tmp_path):
    ds_service.server.add("poll", Fail(500))
    ds_service.server.add("result", Fail(503))
    code, stdout, stderr = run(capsys, *ds_service.args(small_story, tmp_path / "out"))
    assert code == 0, stderr
    assert len(ds_service.server.drawn()) == 2  # one task per panel: a failed look does not submit again


def test_dashscope_needs_one_of_its_own_models(capsys, ds_service, tmp_path):
    args = ds_service.args(LITTLE_PRINCE, tmp_path / "out")
    args.remove("--model")
    args.remove(ds_service.model)
    code, _, stderr = run(capsys, *args)
    assert (code, stderr) == (1, "Error: the dashscope renderer draws with a DashScope image model, not "
                                 "'stable-diffusion-v1-5/stable-diffusion-v1-5': set render.model (or --model) "
                                 "to one, e.g. wan2.2-t2i-flash or qwen-image\n")
    assert ds_service.server.requests == []


def test_a1111_names_the_checkpoints_it_has(capsys, webui_service, tmp_path):
    args = webui_service.args(LITTLE_PRINCE, tmp_path / "out")
    args.remove("--model")
    args.remove(webui_service.model)
    code, _, stderr = run(capsys, *args)
    assert (code, stderr) == (1, f"Error: the A1111 server at {webui_service.server.root} has no checkpoint "
                                 "'stable-diffusion-v1-5/stable-diffusion-v1-5'; set render.model (or --model) to "
                                 "one of its checkpoints: sd_xl_base_1.0, v1-5-pruned-emaonly\n")
    assert webui_service.server.drawn() == []


def test_a1111_knows_a_checkpoint_by_title_file_or_hash(capsys, webui_service, small_story, tmp_path):
    for name in ("sd_xl_base_1.0.safetensors [31e35c80fc]", "sd_xl_base_1.0.safetensors", "31e35c80fc"):
        webui_service.model = name
        assert run(capsys, *webui_service.args(small_story, tmp_path / name.replace(" ", "_")))[0] == 0
        sent = webui_service.server.drawn()[-1].body
        assert sent["override_settings"]["sd_model_checkpoint"] == CHECKPOINTS[1]["title"]


def test_a1111_without_an_address_or_with_a_web_page(capsys, small_story, tmp_path, monkeypatch):
    code, _, stderr = run(capsys, "build", small_story, "--out", tmp_path / "a", "--renderer", "a1111")
    assert (code, stderr) == (1, "Error: the a1111 renderer needs the server's address: --base-url "
                                 "http://127.0.0.1:7860 (or STORYBOARD_A1111_URL)\n")
    server = ImageServer().start()
    try:  # the address of something that is not the API (a web UI started without --api answers 404)
        monkeypatch.setenv("STORYBOARD_A1111_URL", f"{server.root}/nothing-here")
        code, _, stderr = run(capsys, "build", small_story, "--out", tmp_path / "b", "--renderer", "a1111",
                              "--model", "v1-5-pruned-emaonly")
    finally:
        server.stop()
    assert (code, stderr) == (1, f"Error: the A1111 server at {server.root}/nothing-here answered HTTP 404 Not "
                                 "Found: is the web UI started with --api, and is the address the one it prints "
                                 "(e.g. http://127.0.0.1:7860)?\n")


def test_nothing_listening(capsys, service, small_story, tmp_path):
    port = service.server.port
    service.server.stop()
    code, _, stderr = run(capsys, *service.args(small_story, tmp_path / "out"))
    assert code == 1 and stderr.count("\n") == 4 and "Traceback" not in stderr  # 3 retries, then the error
    assert f"127.0.0.1:{port}" in stderr and "failed (connection refused); gave up after 4 attempts" in stderr


def test_options_a_renderer_does_not_take(capsys, small_story, tmp_path):
    code, _, stderr = run(capsys, "build", small_story, "--renderer", "draft", "--base-url", "http://x")
    assert (code, stderr) == (1, "Error: the draft renderer does not take --base-url\n")
    code, _, stderr = run(capsys, "variants", small_story, "--panel", "1", "--renderer", "draft", "--timeout", "3")
    assert (code, stderr) == (1, "Error: the draft renderer does not take --timeout\n")


def test_variants_draw_remotely(capsys, service, small_story, tmp_path):
    base = service.args(small_story, tmp_path / "out")[4:]
    code, stdout, stderr = run(capsys, "variants", small_story, "--panel", "1", "--count", "2", "--out",
                               tmp_path / "out", *base)
    assert code == 0, stderr
    sent = service.server.drawn()
    assert [r.body["parameters"]["seed"] if service.name == "dashscope" else r.body["seed"] for r in sent] == [41, 42]
    assert pixel(tmp_path / "out" / "variants" / "panel-01" / "seed-42.png") == \
        expected_colour("watercolor, a fox in the snow", 42)


# --------------------------------------------------------------------------- the SDK's own settings


def test_dashscope_address_from_the_sdk_environment_in_a_fresh_process(small_story, tmp_path):
    server = ImageServer(key=KEY).start()
    try:
        env = {**os.environ, "DASHSCOPE_API_KEY": KEY, "DASHSCOPE_HTTP_BASE_URL": server.dashscope_url,
               "STORYBOARD_POLL_SECONDS": "0.01", "PYTHONPATH": str(ROOT),
               "STORYBOARD_MODULES_OUT": str(tmp_path / "modules.txt")}
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "run_storyboard.py"), "build", str(small_story),
                               "--out", str(tmp_path / "out"), "--renderer", "dashscope", "--model", "qwen-image"],
                              env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rendered 2, reused 0 (dashscope renderer)\n")
    assert [r.path for r in server.drawn()] == [SUBMIT_PATH, SUBMIT_PATH]
    modules = set((tmp_path / "modules.txt").read_text().split())
    assert "dashscope" in modules and not modules & {"torch", "diffusers", "transformers"}
    shutil.rmtree(tmp_path / "out")
