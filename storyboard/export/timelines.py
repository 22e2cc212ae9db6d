"""The animatic's timeline for editing software, from one list of clips: OpenTimelineIO (the Academy Software
Foundation's interchange format) and Final Cut Pro 7 XML (which Premiere Pro, DaVinci Resolve and Final Cut
import). One clip per board, named by its shot number, its picture as the media, its dialogue as a marker."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from storyboard.story import Story

if TYPE_CHECKING:
    from storyboard.export.built import Built
    from storyboard.export.run import ExportProgress


class Otio:
    """animatic.otio: a timeline of one video track, a clip per board."""

    name, version = "otio", "1"

    def applies(self, story: Story) -> bool:
        return True

    def make(self, built: Built, path: Path, progress: ExportProgress) -> None:
        import opentimelineio as otio

        progress.making(self.name, path)
        fps = built.fps
        width, height = built.video_size
        timeline = otio.schema.Timeline(name=built.story.title)
        timeline.global_start_time = otio.opentime.RationalTime(0, fps)
        track = otio.schema.Track(name="Boards", kind=otio.schema.TrackKind.Video)
        for board, (_, count) in zip(built.boards, built.frames):
            length = otio.opentime.TimeRange(otio.opentime.RationalTime(0, fps),
                                             otio.opentime.RationalTime(count, fps))
            media = otio.schema.ExternalReference(target_url=built.picture(board).resolve().as_uri(),
                                                  available_range=length)
            clip = otio.schema.Clip(name=board.shot, media_reference=media, source_range=length)
            clip.metadata["storyboard"] = {
                "panel": board.panel, "scene": board.scene, "heading": board.heading, "shot": board.shot,
                "size": board.framing.size or "", "angle": board.framing.angle or "", "move": board.framing.move,
                "lens": board.framing.lens or 0, "duration": board.duration, "action": board.action,
                "notes": board.notes, "width": width, "height": height,
            }
            said = board.subtitle()
            if said:
                clip.markers.append(otio.schema.Marker(name=said, marked_range=length,
                                                       color=otio.schema.MarkerColor.YELLOW))
            track.append(clip)
        timeline.tracks.append(track)
        path.write_text(otio.adapters.write_to_string(timeline, "otio_json"), encoding="utf-8")


class FinalCutXml:
    """animatic.xml: an xmeml (version 5) sequence with one clipitem per board on one video track."""

    name, version = "fcpxml", "1"

    def applies(self, story: Story) -> bool:
        return True

    def make(self, built: Built, path: Path, progress: ExportProgress) -> None:
        progress.making(self.name, path)
        fps = built.fps
        width, height = built.video_size

        def rate(parent: ET.Element) -> None:
            element = ET.SubElement(parent, "rate")
            _text(element, "timebase", fps)
            _text(element, "ntsc", "FALSE")

        root = ET.Element("xmeml", version="5")
        sequence = ET.SubElement(root, "sequence", id="sequence-1")
        _text(sequence, "name", built.story.title)
        _text(sequence, "duration", built.total_frames)
        rate(sequence)
        code = ET.SubElement(sequence, "timecode")
        rate(code)
        _text(code, "string", "00:00:00:00")
        _text(code, "frame", 0)
        _text(code, "displayformat", "NDF")
        video = ET.SubElement(ET.SubElement(sequence, "media"), "video")
        traits = ET.SubElement(ET.SubElement(video, "format"), "samplecharacteristics")
        rate(traits)
        _text(traits, "width", width)
        _text(traits, "height", height)
        _text(traits, "pixelaspectratio", "square")
        track = ET.SubElement(video, "track")
        for n, (board, (first, count)) in enumerate(zip(built.boards, built.frames), start=1):
            picture = built.picture(board)
            item = ET.SubElement(track, "clipitem", id=f"clipitem-{n}")
            _text(item, "name", board.shot)
            _text(item, "duration", count)
            rate(item)
            _text(item, "start", first)
            _text(item, "end", first + count)
            _text(item, "in", 0)
            _text(item, "out", count)
            _text(item, "stillframe", "TRUE")
            file = ET.SubElement(item, "file", id=f"file-{n}")
            _text(file, "name", picture.name)
            _text(file, "pathurl", picture.resolve().as_uri().replace("file:///", "file://localhost/", 1))
            rate(file)
            _text(file, "duration", count)
            still = ET.SubElement(ET.SubElement(ET.SubElement(file, "media"), "video"), "samplecharacteristics")
            _text(still, "width", width)
            _text(still, "height", height)
            said = board.subtitle()
            notes = " / ".join(p for p in (board.framing.label(), board.action, board.notes) if p)
            comments = ET.SubElement(item, "comments")
            _text(comments, "mastercomment1", said)
            _text(comments, "mastercomment2", notes)
            if said:
                marker = ET.SubElement(item, "marker")
                _text(marker, "name", board.shot)
                _text(marker, "comment", said)
                _text(marker, "in", 0)
                _text(marker, "out", -1)
        ET.indent(root)
        body = ET.tostring(root, encoding="unicode")
        path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n{body}\n', encoding="utf-8")


def _text(parent: ET.Element, tag: str, value: object) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = str(value)
    return element
