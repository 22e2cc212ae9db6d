"""The pages for readers: `<title>.cbz` for comic readers (Komga, Kavita, YACReader, Mihon), with a ComicInfo.xml
(the ComicInfo 2.0 schema), and `<title>.epub`, a fixed-layout EPUB 3 (Apple Books, Kobo, Google Play Books): one
comic page per EPUB page, the captions and dialogue kept as text for screen readers and search.

Both hold the composed pages as they are (PNG), in reading order; a right-to-left story says so (`Manga:
YesAndRightToLeft`, `page-progression-direction="rtl"`).
"""

from __future__ import annotations

import hashlib
import html
import io
import uuid
import xml.etree.ElementTree as ET
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from storyboard.errors import ExportError
from storyboard.story import Story

if TYPE_CHECKING:
    from storyboard.export.built import Built, Page
    from storyboard.export.run import ExportProgress

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # entries carry no build time: the same pages make the same archive


def _add(archive: zipfile.ZipFile, name: str, data: bytes, compress: bool = True) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def _read_page(page: Page) -> tuple[bytes, tuple[int, int]]:
    """A page's PNG, read once: its bytes and its size."""
    try:
        data = page.file.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            return data, image.size
    except OSError as exc:
        raise ExportError(f"cannot read {page.file}: {exc.strerror or exc}; build the story again") from None


class ComicBook:
    """`<title>.cbz`: a zip of the pages (001.png, 002.png, ...) and ComicInfo.xml, the first page marked as the
    cover."""

    name, version = "cbz", "1"

    def applies(self, story: Story) -> bool:
        return story.medium == "comic"

    def make(self, built: Built, path: Path, progress: ExportProgress) -> None:
        progress.making(self.name, path)
        width = len(str(len(built.pages))) if len(built.pages) > 999 else 3
        with zipfile.ZipFile(path, "w") as archive:
            sizes = []
            for n, page in enumerate(built.pages, start=1):
                data, size = _read_page(page)
                _add(archive, f"{n:0{width}d}.png", data, compress=False)  # PNG is compressed already
                sizes.append((len(data), *size))
            _add(archive, "ComicInfo.xml", comic_info(built, sizes))


def comic_info(built: Built, sizes: list[tuple[int, int, int]]) -> bytes:
    """ComicInfo.xml (ComicInfo 2.0): its elements in the schema's order; `sizes` is (bytes, width, height) of
    each page."""
    story = built.story
    root = ET.Element("ComicInfo", {"xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
                                    "xmlns:xsd": "http://www.w3.org/2001/XMLSchema"})

    def put(tag: str, value: object) -> None:
        if value not in ("", None):
            ET.SubElement(root, tag).text = str(value)

    put("Title", story.title)
    put("Series", story.title)
    put("Number", "1")
    put("Summary", story.outline.strip())
    put("Notes", "Made with storyboard")
    put("Writer", story.layout.credits.strip())
    put("PageCount", len(built.pages))
    put("LanguageISO", story.language)
    put("Manga", "YesAndRightToLeft" if story.layout.direction == "rtl" else "No")
    put("Characters", ", ".join(story.characters))
    pages = ET.SubElement(root, "Pages")
    for n, (size, width, height) in enumerate(sizes):
        attributes = {"Image": str(n), "ImageSize": str(size), "ImageWidth": str(width), "ImageHeight": str(height)}
        if n == 0:
            attributes["Type"] = "FrontCover"
        page = built.pages[n]
        if page.chapter:
            attributes["Bookmark"] = page.chapter
        ET.SubElement(pages, "Page", attributes)
    ET.indent(root)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False) \
        + b"\n"


class Epub:
    """`<title>.epub`: EPUB 3, fixed layout (pre-paginated), one comic page per EPUB page at the page's own size,
    a navigation document from the chapters (or the title), the first page as the cover."""

    name, version = "epub", "1"

    def applies(self, story: Story) -> bool:
        return story.medium == "comic"

    def make(self, built: Built, path: Path, progress: ExportProgress) -> None:
        progress.making(self.name, path)
        story = built.story
        language = story.language
        rtl = story.layout.direction == "rtl"
        identifier = uuid.UUID(hashlib.sha256(f"storyboard|{story.title}|{built.folder.root.resolve()}".encode())
                               .hexdigest()[:32])
        modified = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        items, spine, contents = [], [], []
        with zipfile.ZipFile(path, "w") as archive:
            _add(archive, "mimetype", b"application/epub+zip", compress=False)  # first, stored: the spec says so
            _add(archive, "META-INF/container.xml", CONTAINER.encode())
            for n, page in enumerate(built.pages, start=1):
                data, (width, height) = _read_page(page)
                image, document = f"images/page-{n:03d}.png", f"page-{n:03d}.xhtml"
                _add(archive, f"EPUB/{image}", data, compress=False)
                texts = [text for number in page.panels for text in built.panel_text(number)]
                _add(archive, f"EPUB/{document}", _page_xhtml(story.title, n, image, (width, height), texts,
                                                               language).encode())
                cover = ' properties="cover-image"' if n == 1 else ""
                items.append(f'<item id="image-{n}" href="{image}" media-type="image/png"{cover}/>')
                items.append(f'<item id="page-{n}" href="{document}" media-type="application/xhtml+xml"/>')
                spine.append(f'<itemref idref="page-{n}"/>')
                if page.chapter:
                    contents.append((page.chapter, document))
            if not contents or contents[0][1] != "page-001.xhtml":
                contents.insert(0, (story.title, "page-001.xhtml"))
            _add(archive, "EPUB/nav.xhtml", _nav(story.title, contents, language).encode())
            direction = ' page-progression-direction="rtl"' if rtl else ""
            opf = OPF.format(identifier=f"urn:uuid:{identifier}", title=html.escape(story.title), language=language,
                             modified=modified, items="\n    ".join(items), spine="\n    ".join(spine),
                             direction=direction, creator=_creator(story))
            _add(archive, "EPUB/package.opf", opf.encode())


def _creator(story: Story) -> str:
    credits = story.layout.credits.strip()
    return f"\n    <dc:creator>{html.escape(credits)}</dc:creator>" if credits else ""


def _page_xhtml(title: str, number: int, image: str, size: tuple[int, int], texts: list[str], language: str) -> str:
    width, height = size
    said = "\n".join(f"      <p>{html.escape(text)}</p>" for text in texts)
    alt = html.escape(" ".join(texts) or f"{title}, page {number}", quote=True)
    text_layer = f'\n    <section class="text" aria-label="Text of page {number}">\n{said}\n    </section>' \
        if texts else ""
    head = f"""
    <meta name="viewport" content="width={width}, height={height}"/>
    <style>
      html, body {{ margin: 0; padding: 0; width: {width}px; height: {height}px; }}
      img {{ display: block; width: {width}px; height: {height}px; }}
      .text {{ position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }}
    </style>"""
    body = f'<img src="{image}" width="{width}" height="{height}" alt="{alt}"/>{text_layer}'
    return _xhtml(f"{title}, page {number}", language, body, head)


def _nav(title: str, contents: list[tuple[str, str]], language: str) -> str:
    entries = "\n".join(f'        <li><a href="{href}">{html.escape(name)}</a></li>' for name, href in contents)
    body = f"""<nav epub:type="toc" id="toc">
      <h1>{html.escape(title)}</h1>
      <ol>
{entries}
      </ol>
    </nav>"""
    return _xhtml(title, language, body)


def _xhtml(title: str, language: str, body: str, head: str = "") -> str:
    """An EPUB content document."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"
      xml:lang="{language}" lang="{language}">
  <head>
    <meta charset="utf-8"/>
    <title>{html.escape(title)}</title>{head}
  </head>
  <body>
    {body}
  </body>
</html>
"""


CONTAINER = """<?xml version="1.0" encoding="utf-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="EPUB/package.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"""

OPF = """<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="book-id" xml:lang="{language}">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="book-id">{identifier}</dc:identifier>
    <dc:title>{title}</dc:title>
    <dc:language>{language}</dc:language>{creator}
    <meta property="dcterms:modified">{modified}</meta>
    <meta property="rendition:layout">pre-paginated</meta>
    <meta property="rendition:orientation">auto</meta>
    <meta property="rendition:spread">none</meta>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    {items}
  </manifest>
  <spine{direction}>
    {spine}
  </spine>
</package>
"""
