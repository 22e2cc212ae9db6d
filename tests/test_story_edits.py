"""Story edits are transactions: a pick never writes over a save it has not read, never over a broken file, and an
acknowledged pick is always in the file, however many arrive at once."""

from __future__ import annotations

import random
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from serve_process import ServeProcess

from storyboard.edit import pick_seed
from storyboard.errors import StoryChanged, StoryError
from storyboard.story import load_story

EIGHT = "title: Eight\nrender: {width: 64, height: 64, steps: 2, seed: 10}\npanels:\n" + "".join(
    f"  - prompt: scene {i}   # panel {i}\n    caption: Caption {i}\n" for i in range(1, 9))


def save_as_an_editor(path: Path, text: str) -> None:
    """Write a new file and rename it over the old one, as most editors save."""
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)


def test_simultaneous_picks_in_one_process_all_land(tmp_path):
    path = tmp_path / "story.yaml"
    path.write_text(EIGHT, encoding="utf-8")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: pick_seed(path, n, 1000 + n), range(1, 9)))
    assert [p.seed for p in load_story(path).panels] == [1000 + n for n in range(1, 9)]
    assert "# panel 3" in path.read_text(encoding="utf-8")  # comments kept
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_pick_racing_a_save_never_loses_the_save(tmp_path):
    path = tmp_path / "story.yaml"
    rng = random.Random(7)
    applied = refused = 0
    for race in range(100):
        path.write_text(EIGHT, encoding="utf-8")
        saved = EIGHT.replace("Caption 5", f"My own caption {race}")
        start = threading.Barrier(2)

        def save(start: threading.Barrier, saved: str) -> None:
            start.wait()
            time.sleep(rng.uniform(0, 0.004))
            save_as_an_editor(path, saved)

        saver = threading.Thread(target=save, args=(start, saved))
        saver.start()
        start.wait()
        try:
            pick_seed(path, 2, 4242)
            applied += 1
        except StoryChanged:
            refused += 1
        saver.join()
        text = path.read_text(encoding="utf-8")
        assert f"My own caption {race}" in text, f"race {race}: the user's save was lost"
    assert applied + refused == 100


def test_a_pick_against_a_broken_file_refuses_and_leaves_it_byte_for_byte(tmp_path):
    path = tmp_path / "story.yaml"
    broken = EIGHT.replace("title: Eight", "title: [Eight").encode("utf-8")
    path.write_bytes(broken)
    with pytest.raises(StoryError, match="invalid YAML"):
        pick_seed(path, 1, 5)
    assert path.read_bytes() == broken


def test_a_file_that_keeps_changing_is_refused_without_a_write(tmp_path, monkeypatch):
    import storyboard.story.edits as edits

    path = tmp_path / "story.yaml"
    path.write_text(EIGHT, encoding="utf-8")
    saves = iter(range(100))

    def user_saves_meanwhile(target, before, data):
        save_as_an_editor(path, EIGHT.replace("Caption 1", f"Edit {next(saves)}"))
        return False if path.read_bytes() != before else pytest.fail("the file did not change")

    monkeypatch.setattr(edits, "write_if_unchanged", user_saves_meanwhile)
    with pytest.raises(StoryChanged, match="kept changing while storyboard was writing it; nothing was written"):
        pick_seed(path, 3, 77)
    assert "seed: 77" not in path.read_text(encoding="utf-8")


def test_eight_simultaneous_picks_through_the_server_are_all_in_the_file(tmp_path):
    path = tmp_path / "story.yaml"
    path.write_text(textwrap.dedent(EIGHT), encoding="utf-8")
    server = ServeProcess(path, tmp_path / "out", "--renderer", "small")
    try:
        token = {"X-Storyboard-Token": server.token()}
        for round_ in range(5):
            seeds = {n: 100 * round_ + n for n in range(1, 9)}
            with ThreadPoolExecutor(max_workers=8) as pool:
                replies = list(pool.map(
                    lambda n, seeds=seeds: server.request("POST", f"/api/panels/{n}/pick", {"seed": seeds[n]}, token),
                    range(1, 9)))
            assert [status for status, _ in replies] == [200] * 8, replies
            assert [p.seed for p in load_story(path).panels] == [100 * round_ + n for n in range(1, 9)]
        assert "Traceback" not in "".join(server.stderr)
    finally:
        server.close()


def test_hostile_requests_get_one_line_and_never_a_500(tmp_path):
    path = tmp_path / "story.yaml"
    path.write_text(EIGHT, encoding="utf-8")
    before = path.read_bytes()
    server = ServeProcess(path, tmp_path / "out", "--renderer", "small")
    try:
        token = {"X-Storyboard-Token": server.token()}
        digits = "9" * 5000
        # Before the token is even looked at, a huge panel number must not break route matching.
        assert server.request("POST", f"/api/panels/{digits}/pick", {"seed": 1})[0] == 403
        status, reply = server.request("POST", f"/api/panels/{digits}/pick", {"seed": 1}, token)
        assert status == 400 and reply["error"] == "'99999999999999999999'... (5000 characters) is not a panel number"
        assert server.request("POST", "/api/panels/-1/redraw", headers=token)[0] == 400
        deep = b"[" * 2000 + b"]" * 2000
        assert server.request("POST", "/api/panels/1/pick", headers=token, raw=deep) == (
            400, {"error": "the request body is nested too deeply"})
        huge = b'{"seed": 1, "pad": "' + b"x" * (70 * 1024) + b'"}'
        status, reply = server.request("POST", "/api/panels/1/pick", headers=token, raw=huge)
        assert (status, reply) == (413, {"error": "the request body must be at most 64 KiB"})
        assert server.request("POST", "/api/panels/1/pick", {"seed": "1"}, token)[0] == 400
        assert server.request("POST", "/api/panels/1/variants", {"count": 10**400}, token)[0] == 400
        assert path.read_bytes() == before
        assert "Traceback" not in "".join(server.stderr)
    finally:
        server.close()
