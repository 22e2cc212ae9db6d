"""`--renderer comfyui` against a fake ComfyUI on 127.0.0.1 (tests/comfyui_server.py): its HTTP routes and a real
websocket, checking graphs the way ComfyUI does. Nothing of the renderer is patched."""

from __future__ import annotations

import io
import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from cli_runs import pixel, run
from comfyui_server import CHECKPOINTS, Crash, DropSocket, FakeComfyUI, Stall, node_types
from image_server import expected_colour
from loopback import Fail
from PIL import Image

from storyboard.building import BuildProgress
from storyboard.errors import BuildCancelled, RendererRequestError, StoryError
from storyboard.provenance import read_provenance
from storyboard.render.comfyui import ComfyUIRenderer
from storyboard.render.comfyui.graph import BUILTIN, Filled, read_workflow, without_unread, workflow_of
from storyboard.render.comfyui.nodetypes import NodeTypes
from storyboard.render.comfyui.samplers import COMFY_SAMPLERS, comfy_sampler
from storyboard.resolve import resolve, resolve_jobs
from storyboard.schedulers import SCHEDULERS
from storyboard.session import Session
from storyboard.story import load_story

ROOT = Path(__file__).resolve().parent.parent
LITTLE_PRINCE = ROOT / "stories" / "little_prince.yaml"
TXT2IMG = ROOT / "docs" / "comfyui" / "txt2img_api.json"
IPADAPTER = ROOT / "docs" / "comfyui" / "ipadapter_api.json"
DEFAULT_GRAPH = ROOT / "tests" / "data" / "comfyui" / "default_api.json"
MODEL = "v1-5-pruned-emaonly.safetensors"
PREFIX = re.compile(r"^storyboard/[0-9a-f]{20}$")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("COMFYUI_URL", raising=False)
    monkeypatch.setenv("STORYBOARD_BACKOFF", "0")
    monkeypatch.setenv("STORYBOARD_POLL_SECONDS", "0.01")


@pytest.fixture
def comfy():
    server = FakeComfyUI().start()
    yield server
    server.stop()


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
        panels:
          - prompt: a fox in the snow
          - prompt: a girl in a blue coat
            seed: 2000
        """)


CAST = """
    title: Three panels, two characters
    characters:
      fox: a small red fox
      girl: a girl in a blue coat
    render:
      width: 64
      height: 64
      steps: 4
      seed: 7
      workflow: ipadapter.json
    panels:
      - prompt: the fox in the snow
        characters: [fox]
      - prompt: the girl and the fox at the well
        characters: [girl, fox]
      - prompt: an empty desert at night
    """


@pytest.fixture
def cast_story(write_story, tmp_path) -> Path:
    shutil.copy(IPADAPTER, tmp_path / "ipadapter.json")
    return write_story(CAST)


def args(server: FakeComfyUI, story: Path, out: Path, *more: object) -> list[str]:
    return ["build", str(story), "--out", str(out), "--renderer", "comfyui", "--base-url", server.root,
            "--model", MODEL, *map(str, more)]


def little_prince(tmp_path: Path, **render: str) -> Path:
    """The Little Prince story in `tmp_path`, with `render` fields added."""
    text = LITTLE_PRINCE.read_text(encoding="utf-8")
    lines = "".join(f"  {key}: {value}\n" for key, value in render.items())
    story = tmp_path / "little_prince.yaml"
    story.write_text(text.replace("\nrender:\n", f"\nrender:\n{lines}", 1), encoding="utf-8")
    return story


def filled_builtin(job, prefix: str) -> dict:
    """The built-in graph as it is queued for `job`."""
    graph = json.loads(json.dumps(BUILTIN))
    sampler = comfy_sampler(dict(job.options)["scheduler"])
    graph["3"]["inputs"].update(seed=job.seed, steps=job.steps, cfg=job.guidance, sampler_name=sampler.sampler,
                                scheduler=sampler.scheduler)
    graph["4"]["inputs"]["ckpt_name"] = MODEL
    graph["5"]["inputs"].update(width=job.width, height=job.height)
    graph["6"]["inputs"]["text"] = job.prompt
    graph["7"]["inputs"]["text"] = job.negative_prompt
    graph["9"]["inputs"]["filename_prefix"] = prefix
    return graph


# --------------------------------------------------------------------------- the Little Prince, three graphs


def test_the_little_prince_through_the_built_in_graph(capsys, caplog, comfy, tmp_path):
    out = tmp_path / "lp"
    code, stdout, stderr = run(capsys, *args(comfy, LITTLE_PRINCE, out))
    assert (code, stderr) == (0, "")
    assert stdout.startswith("rendered 8, reused 0 (comfyui renderer)\n")
    said = [r.getMessage() for r in caplog.records if "character anchors" in r.getMessage()]
    assert said == ["the comfyui renderer's built-in graph cannot read character anchors (render.workflow can "
                    "name a graph with a \"%reference%\" input); panels that list characters are drawn from their "
                    "prompts alone (render.consistency: none)"]
    jobs = resolve(load_story(LITTLE_PRINCE), model=MODEL)
    queued = comfy.queued()
    prefixes = [graph["9"]["inputs"]["filename_prefix"] for graph in queued]
    assert all(PREFIX.match(prefix) for prefix in prefixes) and len(set(prefixes)) == 8
    assert queued == [filled_builtin(job, graph["9"]["inputs"]["filename_prefix"])
                      for job, graph in zip(jobs, queued)]
    # One websocket, and the same client id on it and on every prompt.
    assert len(comfy.sockets) == 1 and {body["client_id"] for body in comfy.prompts} == set(comfy.sockets)
    for job in jobs:  # the pixels are the ones the server drew for this very prompt and seed
        assert pixel(out / job.file) == expected_colour(job.prompt, job.seed)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    first = manifest["panels"][0]
    assert first["info"] == {"comfyui_version": "0.3.60", "prompt_id": comfy.prompt_ids[0]}
    assert set(first["identity"]) == {"renderer", "version", "service", "model", "workflow", "graph", "sampler"}
    assert first["identity"]["workflow"] == manifest["panels"][7]["identity"]["workflow"]

    before = len(comfy.requests)
    code, stdout, _ = run(capsys, *args(comfy, LITTLE_PRINCE, out))
    assert code == 0 and stdout.startswith("rendered 0, reused 8 (comfyui renderer)\n")
    assert len(comfy.requests) == before  # a rebuild with nothing changed asks nothing


def test_editing_one_prompt_queues_exactly_one(capsys, comfy, tmp_path):
    story = little_prince(tmp_path)
    out = tmp_path / "lp"
    assert run(capsys, *args(comfy, story, out))[0] == 0
    story.write_text(story.read_text(encoding="utf-8").replace("dreaming, eyes closed", "dreaming, eyes shut"),
                     encoding="utf-8")
    code, stdout, _ = run(capsys, *args(comfy, story, out))
    assert code == 0 and stdout.startswith("rendered 1, reused 7")
    assert len(comfy.prompts) == 9
    assert "dreaming, eyes shut" in comfy.queued()[-1]["6"]["inputs"]["text"]


def test_a_graph_with_placeholders(capsys, comfy, tmp_path):
    shutil.copy(TXT2IMG, tmp_path / "graph.json")
    story = little_prince(tmp_path, workflow="graph.json")
    out = tmp_path / "lp"
    code, stdout, stderr = run(capsys, *args(comfy, story, out))
    assert (code, stderr) == (0, "")
    assert stdout.startswith("rendered 8, reused 0")
    jobs = resolve(load_story(story), model=MODEL)
    graph = comfy.queued()[1]
    assert graph["3"]["inputs"] == {"seed": 1235, "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m",
                                    "scheduler": "karras", "denoise": 1, "model": ["10", 0], "positive": ["6", 0],
                                    "negative": ["7", 0], "latent_image": ["5", 0]}
    assert graph["6"]["inputs"]["text"] == f"storybook illustration, {jobs[1].prompt}"
    assert graph["7"]["inputs"]["text"] == f"{jobs[1].negative_prompt}, photo, 3d render"
    assert graph["5"]["inputs"] == {"width": 512, "height": 512, "batch_size": 1}
    assert graph["4"]["inputs"] == {"ckpt_name": MODEL}
    assert graph["10"]["inputs"]["lora_name"] == "ghibli_style.safetensors"  # the rest of the graph is the user's
    assert graph["10"]["_meta"] == {"title": "Load LoRA"}
    for job in jobs:
        assert pixel(out / job.file) == expected_colour(f"storybook illustration, {job.prompt}", job.seed)


def test_a_graph_of_standard_nodes_only(capsys, comfy, small_story, tmp_path):
    shutil.copy(DEFAULT_GRAPH, tmp_path / "default.json")
    small_story.write_text(small_story.read_text().replace("render:\n", "render:\n  workflow: default.json\n"))
    out = tmp_path / "out"
    code, _, stderr = run(capsys, *args(comfy, small_story, out))
    assert (code, stderr) == (0, "")
    graph = comfy.queued()[1]
    assert {k: v for k, v in graph["3"]["inputs"].items() if not isinstance(v, list)} == {
        "seed": 2000, "steps": 12, "cfg": 5.5, "sampler_name": "euler_ancestral", "scheduler": "normal",
        "denoise": 1}
    assert graph["6"]["inputs"]["text"] == "watercolor, a girl in a blue coat"
    assert graph["7"]["inputs"]["text"] == "blurry, text"
    assert graph["5"]["inputs"] == {"width": 64, "height": 64, "batch_size": 1}
    assert graph["4"]["inputs"] == {"ckpt_name": MODEL}
    assert pixel(out / "panels" / "panel-02.png") == expected_colour("watercolor, a girl in a blue coat", 2000)


def test_the_story_names_the_renderer_and_the_environment_the_server(capsys, comfy, small_story, tmp_path,
                                                                      monkeypatch):
    small_story.write_text(small_story.read_text().replace("render:\n", "render:\n  renderer: comfyui\n"))
    monkeypatch.setenv("COMFYUI_URL", comfy.root + "/")
    code, stdout, stderr = run(capsys, "build", small_story, "--out", tmp_path / "out", "--model", MODEL)
    assert (code, stderr) == (0, "")
    assert stdout.startswith("rendered 2, reused 0 (comfyui renderer)\n")
    assert len(comfy.prompts) == 2


def test_a_model_is_found_by_its_name_without_folder_or_extension(capsys, comfy, small_story, tmp_path):
    arguments = args(comfy, small_story, tmp_path / "out")
    arguments[arguments.index(MODEL)] = "sd_xl_base_1.0"
    assert run(capsys, *arguments)[0] == 0
    assert comfy.queued()[0]["4"]["inputs"]["ckpt_name"] == "SDXL/sd_xl_base_1.0.safetensors"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["panels"][0]["model"] == "sd_xl_base_1.0"  # the key holds the model as the story names it


# --------------------------------------------------------------------------- keys and provenance


def test_editing_the_graph_redraws_and_moving_the_server_does_not(capsys, comfy, small_story, tmp_path):
    graph = tmp_path / "graph.json"
    shutil.copy(TXT2IMG, graph)
    small_story.write_text(small_story.read_text().replace("render:\n", "render:\n  workflow: graph.json\n"))
    out = tmp_path / "out"
    assert run(capsys, *args(comfy, small_story, out))[0] == 0
    graph.write_text(graph.read_text().replace('"strength_model": 0.8', '"strength_model": 0.6'))
    code, stdout, _ = run(capsys, *args(comfy, small_story, out))
    assert code == 0 and stdout.startswith("rendered 2, reused 0")
    assert comfy.queued()[-1]["10"]["inputs"]["strength_model"] == 0.6
    graph.write_text(json.dumps(json.loads(graph.read_text()), indent=4))  # the same graph, written otherwise
    other = FakeComfyUI().start()
    other.stop()  # an address where nothing answers
    code, stdout, stderr = run(capsys, *args(other, small_story, out))
    assert (code, stderr) == (0, "")
    assert stdout.startswith("rendered 0, reused 2")


def test_panels_carry_a1111_parameters_and_the_servers_version(capsys, comfy, small_story, tmp_path):
    out = tmp_path / "out"
    assert run(capsys, *args(comfy, small_story, out))[0] == 0
    provenance = read_provenance(out / "panels" / "panel-02.png")
    assert provenance.parameters == (
        "watercolor, a girl in a blue coat\n"
        "Negative prompt: blurry, text\n"
        f"Steps: 12, Sampler: Euler a, CFG scale: 5.5, Seed: 2000, Size: 64x64, Model: {MODEL}")
    assert provenance.record["renderer"] == "comfyui"
    assert provenance.record["info"]["comfyui_version"] == "0.3.60"


def test_comfyui_progress_drives_the_panels_progress(comfy, small_story, tmp_path):
    class Steps(BuildProgress):
        def __init__(self) -> None:
            self.seen: list[tuple[int, int, int]] = []

        def step(self, job, step, total):
            self.seen.append((job.index, step, total))

    import storyboard

    steps = Steps()
    storyboard.build(small_story, tmp_path / "out", renderer=ComfyUIRenderer(base_url=comfy.root), model=MODEL,
                     progress=steps)
    for panel in (1, 2):
        assert [(s, t) for i, s, t in steps.seen if i == panel and s] == [(s, 12) for s in range(1, 13)]


# --------------------------------------------------------------------------- anchors


def test_anchors_are_uploaded_once_and_each_panel_names_its_characters(capsys, comfy, cast_story, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, *args(comfy, cast_story, out))
    assert (code, stderr) == (0, "")
    assert stdout.startswith("rendered 3, reused 0; character anchors: drawn 2, reused 0")
    manifest = json.loads((out / "manifest.json").read_text())
    keys = {c["name"]: c["key"] for c in manifest["characters"]}
    names = {name: f"storyboard-{key[:32]}.png" for name, key in keys.items()}
    uploads = [r.body["name"] for r in comfy.requests if r.path == "/upload/image"]
    assert sorted(uploads) == sorted(names.values())
    for name, file in names.items():  # the pictures sent are the anchors as drawn
        with Image.open(out / "characters" / f"{name}.png") as drawn:
            assert Image.open(io.BytesIO(comfy.uploads[file])).convert("RGB").tobytes() == \
                drawn.convert("RGB").tobytes()
    anchors, panels = comfy.queued()[:2], comfy.queued()[2:]
    assert all(set(graph) == set(BUILTIN) for graph in anchors)  # anchors: the built-in graph
    assert panels[0]["10"]["inputs"]["image"] == names["fox"]
    assert panels[1]["10"]["inputs"]["image"] == names["girl"]  # %reference%: the first character listed
    # A panel without characters: the nodes reading the anchor are bypassed, the model comes through the loader.
    assert "10" not in panels[2] and "12" not in panels[2]
    assert panels[2]["3"]["inputs"]["model"] == ["11", 0]

    before = len(comfy.requests)
    assert run(capsys, *args(comfy, cast_story, out))[0] == 0
    assert len(comfy.requests) == before
    cast_story.write_text(cast_story.read_text().replace("the fox in the snow", "the fox in the rain"))
    code, stdout, _ = run(capsys, *args(comfy, cast_story, out))
    assert code == 0 and stdout.startswith("rendered 1, reused 2; character anchors: drawn 0, reused 2")
    assert len(uploads) == len([r for r in comfy.requests if r.path == "/upload/image"])  # the server has it
    assert comfy.queued()[-1]["10"]["inputs"]["image"] == names["fox"]


def test_anchors_drawn_with_their_own_graph(capsys, comfy, cast_story, tmp_path):
    shutil.copy(TXT2IMG, tmp_path / "anchors.json")
    cast_story.write_text(cast_story.read_text().replace("render:\n", "render:\n  anchor_workflow: anchors.json\n"))
    assert run(capsys, *args(comfy, cast_story, tmp_path / "out"))[0] == 0
    anchors = comfy.queued()[:2]
    assert [graph["6"]["inputs"]["text"] for graph in anchors] == [
        "storybook illustration, a small red fox, full body, front view, standing, plain light background",
        "storybook illustration, a girl in a blue coat, full body, front view, standing, plain light background"]


def test_a_graph_without_reference_draws_no_anchors(capsys, caplog, comfy, cast_story, tmp_path):
    shutil.copy(TXT2IMG, tmp_path / "ipadapter.json")  # the same name, now a graph that reads no anchor
    code, stdout, _ = run(capsys, *args(comfy, cast_story, tmp_path / "out"))
    assert code == 0 and stdout.startswith("rendered 3, reused 0 (comfyui renderer)")
    said = [r.getMessage() for r in caplog.records if "character anchors" in r.getMessage()]
    assert said == [f"the ComfyUI graph {tmp_path / 'ipadapter.json'} has no \"%reference%\" input, so it cannot "
                    "read character anchors; panels that list characters are drawn from their prompts alone "
                    "(render.consistency: none)"]
    assert len(comfy.prompts) == 3 and not any(r.path == "/upload/image" for r in comfy.requests)


def test_a_second_reference_a_panel_does_not_have_is_bypassed():
    graph = json.loads(IPADAPTER.read_text())
    graph["13"] = {"class_type": "LoadImage", "inputs": {"image": "%reference2%"}}
    graph["14"] = {"class_type": "IPAdapterAdvanced", "inputs": {
        "weight": 0.5, "weight_type": "linear", "start_at": 0, "end_at": 1, "model": ["12", 0],
        "ipadapter": ["11", 1], "image": ["13", 0]}}
    graph["3"]["inputs"]["model"] = ["14", 0]
    workflow = workflow_of(graph, "two.json")
    assert workflow.references == 2
    job = resolve(load_story(LITTLE_PRINCE))[2]
    types = NodeTypes(node_types(), "the server")
    one = workflow.fill(job, ["fox.png"])
    assert one.unread == {"13"}
    nodes = without_unread(one, types.outputs, types.inputs, "two.json", "panel 3")
    assert "13" not in nodes and "14" not in nodes and nodes["3"]["inputs"]["model"] == ["12", 0]
    assert nodes["10"]["inputs"]["image"] == "fox.png"
    both = workflow.fill(job, ["fox.png", "girl.png"])
    assert both.unread == set() and both.nodes["13"]["inputs"]["image"] == "girl.png"
    none = without_unread(workflow.fill(job, []), types.outputs, types.inputs, "two.json", "panel 3")
    assert set(none) == {"3", "4", "5", "6", "7", "8", "9", "11"} and none["3"]["inputs"]["model"] == ["11", 0]
    broken = Filled({"1": {"class_type": "LoadImage", "inputs": {"image": ""}},
                     "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}},
                    "2", unread=frozenset({"1"}))
    with pytest.raises(RendererRequestError, match="leaves no path to node 2 \\(SaveImage\\)"):
        without_unread(broken, types.outputs, types.inputs, "g.json", "panel 1")


# --------------------------------------------------------------------------- graphs storyboard cannot use


def _ui_workflow(path: Path) -> None:
    path.write_text(json.dumps({"last_node_id": 9, "last_link_id": 9, "nodes": [{"id": 3, "type": "KSampler"}],
                                "links": [[1, 4, 0, 3, 0, "MODEL"]], "groups": [], "version": 0.4}))


def test_a_ui_format_file_is_one_line_before_any_request(capsys, comfy, small_story, tmp_path):
    _ui_workflow(tmp_path / "ui.json")
    small_story.write_text(small_story.read_text().replace("render:\n", "render:\n  workflow: ui.json\n"))
    code, stdout, stderr = run(capsys, *args(comfy, small_story, tmp_path / "out"))
    assert (code, stdout) == (1, "")
    assert stderr == (f"Error: render.workflow: {tmp_path / 'ui.json'} is a ComfyUI workflow in the UI format (it has "
                      "\"nodes\" and \"links\"); storyboard needs the API format: in ComfyUI, export it with \"Save "
                      "(API)\" (Workflow > Export (API))\n")
    assert comfy.requests == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("graph", "problem"), [
    ({"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "%model%"}}},
     " has no output image: add a SaveImage node for the panel's picture"),
    ({"9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}}},
     ": the input images of node 9 (SaveImage) is wired to node 8, which the graph does not have"),
    ({**{k: v for k, v in BUILTIN.items() if k != "9"},
      "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "a"}},
      "10": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "b"}}},
     " has 2 SaveImage nodes (9, 10); keep the one whose picture is the panel"),
    ({**json.loads(DEFAULT_GRAPH.read_text()),
      "11": {"class_type": "KSampler", "inputs": json.loads(DEFAULT_GRAPH.read_text())["3"]["inputs"]}},
     " has no placeholders and 2 KSampler nodes (3, 11): mark the inputs storyboard fills with %prompt%, %seed%, "
     "%steps%..."),
    ({"1": {"class_type": "LoadImage", "inputs": {"image": "pose.png"}},
      "9": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}},
     " has no placeholders and no KSampler: mark the inputs storyboard fills with %prompt%, %seed%, %width%... "
     "(see the README's ComfyUI section)"),
    ({**BUILTIN, "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a %reference%", "clip": ["4", 1]}}},
     ": %reference% must be the whole value of the input text of node 6 (CLIPTextEncode) (the name of a picture, "
     "as LoadImage takes it)"),
    ([1, 2], " is not a ComfyUI graph in the API format (an object of nodes, each with class_type and inputs); "
             "export it from ComfyUI with \"Save (API)\""),
    ({"3": {"inputs": {}}}, " is not a ComfyUI graph in the API format: its node 3 has no class_type and inputs; "
                            "export it from ComfyUI with \"Save (API)\""),
])
def test_graphs_that_cannot_draw_a_panel(tmp_path, graph, problem):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph))
    with pytest.raises(StoryError) as raised:
        read_workflow(str(path), "graph.json", "render.workflow")
    assert str(raised.value) == f"render.workflow: graph.json{problem}"


def test_a_graph_file_that_is_missing_or_not_json(tmp_path):
    with pytest.raises(StoryError, match=r"^render.workflow: cannot read the ComfyUI graph g.json: no such file$"):
        read_workflow(str(tmp_path / "missing.json"), "g.json", "render.workflow")
    (tmp_path / "g.json").write_text("{ not json")
    with pytest.raises(StoryError, match=r'^render.anchor_workflow: g.json is not JSON; export the graph from '
                                         r'ComfyUI with "Save \(API\)"$'):
        read_workflow(str(tmp_path / "g.json"), "g.json", "render.anchor_workflow")


def test_a_node_type_the_server_lacks_is_one_line_before_any_panel(capsys, comfy, cast_story, tmp_path):
    del comfy.object_info["IPAdapterAdvanced"]
    code, _, stderr = run(capsys, *args(comfy, cast_story, tmp_path / "out"))
    assert code == 1
    assert stderr == (f"Error: the ComfyUI server at {comfy.root} has no node type 'IPAdapterAdvanced' (node 12 of "
                      f"{tmp_path / 'ipadapter.json'}); install the custom nodes that provide it, or change the "
                      "graph (close names it has: IPAdapterUnifiedLoader)\n")
    assert all("10" not in graph for graph in comfy.queued())  # no panel was queued
    assert not (tmp_path / "out" / "index.html").exists()


def test_a_checkpoint_the_server_lacks_names_the_close_ones(capsys, comfy, small_story, tmp_path):
    arguments = args(comfy, small_story, tmp_path / "out")
    arguments[arguments.index(MODEL)] = "v1-5-pruned.safetensors"
    code, _, stderr = run(capsys, *arguments)
    assert (code, stderr) == (1, f"Error: the ComfyUI server at {comfy.root} has no ckpt_name "
                                 "'v1-5-pruned.safetensors' for node 4 (CheckpointLoaderSimple) of the built-in "
                                 "txt2img graph; set render.model (or --model) to one of them; close names it has: "
                                 "v1-5-pruned-emaonly.safetensors\n")
    arguments[arguments.index("v1-5-pruned.safetensors")] = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    code, _, stderr = run(capsys, *arguments)
    assert stderr.endswith(f"set render.model (or --model) to one of them; it has: {', '.join(sorted(CHECKPOINTS))}\n")
    assert comfy.prompts == []


def test_a_scheduler_comfyui_does_not_have(capsys, comfy, small_story, tmp_path):
    small_story.write_text(small_story.read_text().replace("euler_a", "pndm"))
    code, _, stderr = run(capsys, *args(comfy, small_story, tmp_path / "out"))
    assert code == 1 and stderr.startswith("Error: ComfyUI has no sampler for render.scheduler 'pndm'; choose one "
                                           "of: euler, euler_a, heun, ")
    assert comfy.requests == []


def test_every_scheduler_has_its_comfyui_pair():
    assert set(COMFY_SAMPLERS) == set(SCHEDULERS)
    assert comfy_sampler("euler_a").sampler == "euler_ancestral" and comfy_sampler("euler_a").scheduler == "normal"
    assert (comfy_sampler("dpmpp_2m_karras").sampler, comfy_sampler("dpmpp_2m_karras").scheduler) == \
        ("dpmpp_2m", "karras")
    assert comfy_sampler("dpmpp_2m_karras").label == "DPM++ 2M Karras"


# --------------------------------------------------------------------------- failures while drawing


def test_an_execution_error_is_one_line_and_leaves_the_folder_free(capsys, comfy, small_story, tmp_path):
    comfy.add("run", Crash())
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, *args(comfy, small_story, out))
    assert (code, stdout) == (1, "")
    assert stderr == (f"Error: the ComfyUI server at {comfy.root} could not draw panel 1: KSampler (node 3) failed: "
                      "OutOfMemoryError: Allocation on device 0 would exceed allowed memory. (out of memory)\n")
    assert not (out / "page.png").exists() and not (out / "manifest.json").exists()
    code, stdout, _ = run(capsys, *args(comfy, small_story, out))  # the lock was released
    assert code == 0 and stdout.startswith("rendered 2, reused 0")


def test_a_hung_prompt_meets_the_deadline_and_is_interrupted(capsys, comfy, small_story, tmp_path):
    comfy.add("run", Stall())
    started = time.monotonic()
    code, _, stderr = run(capsys, *args(comfy, small_story, tmp_path / "out", "--timeout", 1))
    assert time.monotonic() - started < 8
    assert (code, stderr) == (1, f"Error: the ComfyUI server at {comfy.root} had not finished panel 1 within 1 s, "
                                 "so it was asked to stop it; try a longer --timeout\n")
    assert comfy.interrupts == [{"prompt_id": comfy.prompt_ids[0]}]  # the running prompt, and only it
    assert comfy.paths()[-2:] == ["GET /queue", "POST /interrupt"]


def test_a_dropped_websocket_falls_back_to_the_history(capsys, comfy, small_story, tmp_path):
    comfy.add("run", DropSocket())
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, *args(comfy, small_story, out))
    assert code == 0
    assert stdout.startswith("rendered 2, reused 0")
    assert stderr == (f"the websocket of the ComfyUI server at {comfy.root} closed; following panel 1 through its "
                      "history\n")
    assert pixel(out / "panels" / "panel-01.png") == expected_colour("watercolor, a fox in the snow", 41)
    assert pixel(out / "panels" / "panel-02.png") == expected_colour("watercolor, a girl in a blue coat", 2000)


def test_a_server_error_is_retried(capsys, comfy, small_story, tmp_path):
    comfy.add("prompt", Fail(500))
    code, stdout, stderr = run(capsys, *args(comfy, small_story, tmp_path / "out"))
    assert code == 0 and stdout.startswith("rendered 2, reused 0")
    assert stderr == (f"the ComfyUI server at {comfy.root} server error (HTTP 500 500 Internal Server Error Server "
                      "got itself in trouble); retrying in 0.0 s (attempt 2 of 4)\n")
    assert len(comfy.prompts) == 2


def test_nothing_listening(capsys, small_story, tmp_path):
    server = FakeComfyUI()
    port = server.port
    server.stop()
    code, _, stderr = run(capsys, *args(server, small_story, tmp_path / "out"))
    assert code == 1 and stderr.count("\n") == 4 and "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (f"Error: connection to the ComfyUI server at http://127.0.0.1:{port} failed "
                                       "(connection refused); gave up after 4 attempts")
    assert not (tmp_path / "out" / "index.html").exists()


@pytest.mark.parametrize("old", [True, False])
def test_a_prompt_answered_from_comfyuis_cache_still_gives_its_picture(capsys, small_story, tmp_path, old):
    server = FakeComfyUI(old_cache=old).start()
    try:
        out = tmp_path / "out"
        assert run(capsys, *args(server, small_story, out))[0] == 0
        code, stdout, stderr = run(capsys, *args(server, small_story, out, "--panel", 2))
    finally:
        server.stop()
    assert (code, stderr) == (0, "")
    assert stdout.startswith("rendered 1, reused 1")
    again = server.queued()[2:]
    if old:  # the cached answer kept no outputs: the same graph once more, under a prefix of its own
        assert len(again) == 2
        first, second = (g["9"]["inputs"].pop("filename_prefix") for g in again)
        assert second.startswith(first + "-") and again[0] == again[1]
    else:
        assert len(again) == 1
    assert pixel(out / "panels" / "panel-02.png") == expected_colour("watercolor, a girl in a blue coat", 2000)


# --------------------------------------------------------------------------- a session (storyboard serve)


def test_cancelling_a_session_build_interrupts_the_running_prompt(comfy, small_story, tmp_path):
    comfy.add("run", Stall())
    renderer = ComfyUIRenderer(base_url=comfy.root)
    with Session(small_story, tmp_path / "out", renderer=renderer, model=MODEL) as session:
        def cancel_once_running() -> None:
            deadline = time.monotonic() + 10
            while not comfy.prompts and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)
            session.cancel()

        threading.Thread(target=cancel_once_running, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(BuildCancelled):
            session.build()
        assert time.monotonic() - started < 5
        assert comfy.interrupts == [{"prompt_id": comfy.prompt_ids[0]}]
        result = session.build()  # the next build draws what was cancelled, through the same renderer
    assert result.rendered == 2
    paths = comfy.paths()
    assert paths.count("GET /object_info") == 1 and paths.count("GET /system_stats") == 1
    assert len(comfy.sockets) == 1


def test_jobs_name_their_graph_file(tmp_path):
    shutil.copy(IPADAPTER, tmp_path / "ipadapter.json")
    story_file = tmp_path / "story.yaml"
    story_file.write_text(CAST.replace("\n    ", "\n").replace("workflow: ipadapter.json",
                                                               "workflow: ipadapter.json\n  anchor_workflow: a.json"))
    jobs = resolve_jobs(load_story(story_file), story_dir=tmp_path)
    assert [job.workflow for job in jobs] == [str(tmp_path / "a.json")] * 2 + [str(tmp_path / "ipadapter.json")] * 3
    assert "workflow" not in jobs[2].params() and jobs[2].to_dict()["workflow"] == str(tmp_path / "ipadapter.json")


def test_stories_that_name_different_renderers(write_story):
    from storyboard.errors import OptionError
    from storyboard.render import named_renderer

    a = load_story(write_story("title: A\nrender: {renderer: comfyui}\npanels: [{prompt: x}]\n", "a.yaml"))
    b = load_story(write_story("title: B\nrender: {renderer: a1111}\npanels: [{prompt: x}]\n", "b.yaml"))
    c = load_story(write_story("title: C\npanels: [{prompt: x}]\n", "c.yaml"))
    assert named_renderer([a, c]) == "comfyui" and named_renderer([c]) is None
    with pytest.raises(OptionError, match=r"^the stories name different renderers in render.renderer \(a1111, "
                                          r"comfyui\); choose one with --renderer$"):
        named_renderer([a, b])


def test_without_a_websocket_each_panel_is_followed_through_its_history(capsys, comfy, cast_story, tmp_path):
    comfy.websockets = False
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, *args(comfy, cast_story, out))
    assert code == 0 and stdout.startswith("rendered 3, reused 0; character anchors: drawn 2")
    assert stderr.startswith(f"the ComfyUI server at {comfy.root} opened no websocket (")
    assert stderr.endswith("); following each panel through its history instead\n") and stderr.count("\n") == 1
    assert pixel(out / "panels" / "panel-03.png") == expected_colour("an empty desert at night", 9)


def test_a_graph_the_server_refuses_is_one_line(capsys, comfy, small_story, tmp_path):
    graph = json.loads(IPADAPTER.read_text())
    graph["12"]["inputs"]["image"] = ["4", 0]  # a MODEL where IPAdapter takes an IMAGE: ComfyUI's own check
    (tmp_path / "graph.json").write_text(json.dumps(graph))
    small_story.write_text(small_story.read_text().replace("render:\n", "render:\n  workflow: graph.json\n"))
    code, _, stderr = run(capsys, *args(comfy, small_story, tmp_path / "out"))
    assert (code, stderr) == (1, f"Error: the ComfyUI server at {comfy.root} refused the graph for panel 1: Prompt "
                                 "outputs failed validation; node 12 (IPAdapterAdvanced): Return type mismatch "
                                 "between linked nodes: image, received_type(MODEL) mismatch input_type(IMAGE)\n")
    assert len([r for r in comfy.requests if r.path == "/prompt"]) == 1  # not retried


def test_a_characters_own_picture_is_what_is_uploaded(capsys, comfy, cast_story, tmp_path):
    Image.new("RGB", (80, 64), (200, 30, 30)).save(tmp_path / "fox.png")
    cast_story.write_text(cast_story.read_text().replace("fox: a small red fox",
                                                         "fox: {description: a small red fox, image: fox.png}"))
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, *args(comfy, cast_story, out))
    assert code == 0 and stdout.startswith("rendered 3, reused 0; character anchors: drawn 2, reused 0")
    assert len(comfy.prompts) == 4  # the girl's anchor and three panels; the fox is the picture
    fox = next(name for name in comfy.uploads if comfy.queued()[1]["10"]["inputs"]["image"] == name)
    sent = Image.open(io.BytesIO(comfy.uploads[fox]))
    assert sent.size == (64, 64) and sent.convert("RGB").getpixel((32, 32)) == (200, 30, 30)


def test_a_graph_path_holding_a_nul_is_one_line(capsys, comfy, small_story, tmp_path):
    small_story.write_text(small_story.read_text().replace("render:\n", 'render:\n  workflow: "g\\0.json"\n'))
    code, _, stderr = run(capsys, *args(comfy, small_story, tmp_path / "out"))
    assert (code, stderr) == (1, f"Error: render.workflow: cannot read the ComfyUI graph {tmp_path}/g\\x00.json: the "
                                 "path holds a NUL character\n")
    assert comfy.requests == []


def test_standard_nodes_are_found_through_a_controlnet_and_a_lora():
    graph = json.loads(DEFAULT_GRAPH.read_text())
    graph["3"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "add_noise": "enable", "noise_seed": 5, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal",
        "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable", "model": ["10", 0],
        "positive": ["11", 0], "negative": ["11", 1], "latent_image": ["5", 0]}}
    graph["10"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "x.safetensors", "strength_model": 1,
                                                           "strength_clip": 1, "model": ["4", 0], "clip": ["4", 1]}}
    graph["11"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "strength": 1, "start_percent": 0, "end_percent": 1, "positive": ["6", 0], "negative": ["7", 0],
        "control_net": ["12", 0], "image": ["13", 0]}}
    graph["12"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "canny.safetensors"}}
    graph["13"] = {"class_type": "LoadImage", "inputs": {"image": "pose.png"}}
    workflow = workflow_of(graph, "controlnet.json")
    job = resolve(load_story(LITTLE_PRINCE))[0]
    nodes = workflow.fill(job, []).nodes
    assert {k: nodes["3"]["inputs"][k] for k in ("noise_seed", "steps", "cfg", "sampler_name", "scheduler")} == {
        "noise_seed": 1234, "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m", "scheduler": "karras"}
    assert nodes["6"]["inputs"]["text"] == job.prompt and nodes["7"]["inputs"]["text"] == job.negative_prompt
    assert nodes["4"]["inputs"]["ckpt_name"] == job.model and nodes["5"]["inputs"]["width"] == 512
    assert nodes["13"]["inputs"] == {"image": "pose.png"} and nodes["10"]["inputs"]["lora_name"] == "x.safetensors"
    assert workflow.references == 0 and workflow.fills_sampler


def test_a_graph_that_takes_only_the_schedule():
    graph = json.loads(json.dumps(BUILTIN))
    graph["3"]["inputs"]["sampler_name"] = "euler"
    job = resolve(load_story(LITTLE_PRINCE))[0]
    nodes = workflow_of(graph, "g.json").fill(job, []).nodes
    assert (nodes["3"]["inputs"]["sampler_name"], nodes["3"]["inputs"]["scheduler"]) == ("euler", "karras")
