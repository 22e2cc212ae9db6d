"""Font subsets for the PDF and the HTML page: only the characters the page uses, at the regular weight.

The page's fonts (Noto Sans SC, KR, JP) are megabytes each; a subset holding one page's characters is tens of
kilobytes. The PDF embeds it; the HTML page loads it with @font-face (a file beside index.html, or inlined with
--self-contained), so the browser shows the same glyphs as page.png even where no CJK font is installed.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from storyboard.errors import BuildError
from storyboard.files import atomic_write_bytes, user_cache_dir
from storyboard.text import REGULAR_WEIGHT, coverage, font_paths

# Part of the cache key of stored subsets: change it when the way subsets are cut changes.
SUBSET_FORMAT = f"1|{REGULAR_WEIGHT}"

# Always kept, so the page's own labels (links, "Panel 3 · seed 42", the viewer's buttons) have glyphs too.
BASIC = "".join(chr(c) for c in range(0x20, 0x7F)) + "·‹›…—–‘’“”×"


@dataclass(frozen=True)
class FontSubset:
    source: Path  # the font file it was cut from
    family: str  # the name the outputs use for it
    data: bytes  # a static OpenType font (TrueType or CFF outlines)
    woff: bytes  # the same, compressed for the web

    @property
    def file_name(self) -> str:
        return f"{self.family}-{hashlib.sha256(self.woff).hexdigest()[:12]}.woff"


def page_subsets(texts: Iterable[str], language: str = "en") -> list[FontSubset]:
    """One subset per font of the page's font chain that any of `texts` needs, in chain order."""
    chars = set(BASIC)
    for text in texts:
        chars.update(text)
    chars.discard("\n")
    paths = font_paths(language)
    wanted: dict[Path, set[str]] = {p: set() for p in paths}
    for char in sorted(chars):
        code = ord(char)
        for path in paths:
            if code in coverage(path):
                wanted[path].add(char)
                break
    return [_subset(path, frozenset(found), f"storyboard-{n}")
            for n, (path, found) in enumerate(wanted.items()) if found]


@functools.lru_cache(maxsize=8)
def _subset(path: Path, chars: frozenset[str], family: str) -> FontSubset:
    """A subset, from the user's cache when this font was already cut to these characters (it takes ~0.5 s)."""
    stat = path.stat()
    text = "".join(sorted(chars))
    key = hashlib.sha256(f"{SUBSET_FORMAT}|{path}|{stat.st_size}|{stat.st_mtime_ns}|{text}".encode()).hexdigest()
    stored = user_cache_dir() / "fonts" / key
    try:
        return FontSubset(path, family, stored.with_suffix(".otf").read_bytes(),
                          stored.with_suffix(".woff").read_bytes())
    except OSError:
        pass
    data, woff = _cut(path, text)
    try:
        atomic_write_bytes(stored.with_suffix(".woff"), woff)
        atomic_write_bytes(stored.with_suffix(".otf"), data)
    except BuildError:
        pass  # an unwritable cache only costs the next build the same work again
    return FontSubset(path, family, data, woff)


def _cut(path: Path, text: str) -> tuple[bytes, bytes]:
    """The font at `path` cut down to the characters of `text`, as (OpenType, WOFF) bytes."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(str(path), fontNumber=0, recalcBBoxes=False, recalcTimestamp=False)
    options = subset.Options()
    # Without the OpenType layout tables: CJK text needs no shaping, and reading those tables of a whole CJK font
    # takes seconds, where the rest of the subset takes a fraction of one. Latin loses its kerning pairs.
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "BASE", "JSTF"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    if "fvar" in font:  # fix variable fonts at the regular weight: their default instance is Thin
        from fontTools.varLib import instancer

        axes = {a.axisTag: (REGULAR_WEIGHT if a.axisTag == "wght" else a.defaultValue) for a in font["fvar"].axes}
        font = instancer.instantiateVariableFont(font, axes)
    plain = io.BytesIO()
    font.save(plain)
    web_font = TTFont(io.BytesIO(plain.getvalue()), lazy=True, recalcBBoxes=False, recalcTimestamp=False)
    web_font.flavor = "woff"  # zlib-compressed tables, copied as they are
    web = io.BytesIO()
    web_font.save(web)
    return plain.getvalue(), web.getvalue()
