"""Content keys pinned to the values the code gave before the build was split into a package: a user's cache and
output folders stay valid across such a change only if every kind of key stays the same.

The values were computed with storyboard 0.1.0 at the commit before that change; a test that fails here means
every user's next build draws again what it had drawn.
"""

import hashlib
import json
import shutil
from pathlib import Path

from PIL import Image

import storyboard

ROOT = Path(__file__).resolve().parent.parent

LITTLE_PRINCE = {
    "panels": [
        "64bfd7ff65291d2ef584a165d76a780a856c567f6fd3ce52a16ba1fd9d7ffe7f",
        "8fc9a759e65d5cb6c964e0ff4665d069605ce46811035f5e8fb6c1db180ed7f5",
        "b02d7c472a37dfbf723c379c93364accc82fd377203f41fb21990f2520e10b42",
        "a2bbdbaf9d92720dce63ba35abc33eda6f8521c6e41b3ef474f86beb9165c46c",
        "3238c012e86f0995b0e6cdbba30e7835e12bd52fe434446eb54d54dd3551b611",
        "5973ca8dd312f6222684382668c84e26f27173ba84b7bcaa3ea3339becb4fa4a",
        "c0d50ae686274c0cd771e388b82761646bfc1e21da92e8c3912ce2add2d952d5",
        "10bb19a74c122f55a53becef8124d5d32575bb8e2b32d4e31f693339506328f9",
    ],
    "characters": [
        "3f34bf923c520dd0977ae7471145f181061d3b45d6fd99f2864ecae5de4fb9f0",
        "8cae29a604eb24a07723b48a61fa96cabf2e9699ac3ce1702bdfcc73d447baef",
        "7e307f9d852aad230c72c6d7f1ded95f7fc5598c2b21619a27d9198b89a5d64d",
        "ee3d42b6f7ee45bffd5513642903e24961ecd3383da3ba4dac1504388d0b132b",
    ],
    "page": "6fc3fdb805eb46a806deffbeb243fae627e374b482ed9e6730317d09fe9981b0",
}

BOOK = "title: Long\nrender: {width: 64, height: 64, seed: 3}\nlayout: {columns: 3, rows: 2}\n" \
       "characters: {girl: a girl in red}\npanels:\n" + "".join(
           f"  - {{prompt: 'scene {i}', caption: 'Caption {i}'{', characters: [girl]' if i % 5 == 0 else ''}"
           f"{', chapter: Part two' if i == 13 else ''}}}\n" for i in range(1, 25))


def keys_of(manifest_path: Path) -> dict:
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return {
        "panels": [p["key"] for p in manifest["panels"]],
        "characters": [c["key"] for c in manifest["characters"]],
        "page": manifest["page"]["key"],
        "pages": [p["key"] for p in manifest["page"].get("pages", [])],
    }


def test_the_little_prince_keeps_its_panel_anchor_and_page_keys(tmp_path):
    shutil.copy(ROOT / "stories" / "little_prince.yaml", tmp_path / "little_prince.yaml")
    storyboard.build(tmp_path / "little_prince.yaml", tmp_path / "out", renderer="draft")
    assert keys_of(tmp_path / "out" / "manifest.json") == {**LITTLE_PRINCE, "pages": []}
    # And the page itself: the same pixels as before film, editions and webtoons came, and no player or switch.
    pixels = Image.open(tmp_path / "out" / "page.png").convert("RGB").tobytes()
    assert hashlib.sha256(pixels).hexdigest() == "a711ddc46a1ea066e7aee42fe080afd7932669f999c9fa2f36c2a7bcf0bf72de"
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "<video" not in page and "hreflang" not in page


def test_a_book_of_24_panels_keeps_its_page_keys(tmp_path):
    (tmp_path / "long.yaml").write_text(BOOK, encoding="utf-8")
    storyboard.build(tmp_path / "long.yaml", tmp_path / "out", renderer="draft")
    keys = keys_of(tmp_path / "out" / "manifest.json")
    assert keys["panels"][:3] == [
        "ff14c26fc67f26c7412217c26379a9a594e37ab6f2a35bb76147e72ea11125cb",
        "802935639e5646e85008936a263afd975e316aa076e1720d542070932978e137",
        "2a8b186fd607fd9711a7f60248720656afedfb42ae20a52e0552238a82820bb5",
    ]
    assert keys["characters"] == ["54bf346306ede66ebf064fa35838a497f946a4e4f314bb8ffd42d4f05462a68f"]
    assert keys["page"] == "47ff0ca812f53758edcbe9b562e3625ceb33abf68c0d2178c6d9c7b676cd1a64"
    assert keys["pages"] == [
        "49f4e26cd32707a288fa3ad1c6289c0491d2211ec20b5f7bfdff0cf4c27eec17",
        "47b8415bfee597f952ca5ee3610da610c243e786d60fcabb05b30713fff99a89",
        "3aebe26ddd247fb37fc7c0956b578d86956f2cb078b8527ec0715db1f84e856f",
        "59c5389148274b9364b057da3ae42228b1c806abf03921a92927aa4656414c09",
    ]
