"""What a built story becomes besides its pages: `storyboard export`.

    built       a built story as the exports read it: its boards in time, each board's picture and key, the
                video's size and frame rate
    formats     the one seam: each format says what its file is made from and how to make it
    run         `export_built`: each asked format made unless its file was made from the same inputs
    texts       shotlist.csv and animatic.srt
    timelines   animatic.otio (OpenTimelineIO) and animatic.xml (Final Cut Pro 7 XML), from one timeline
    animatic    animatic.mp4: the boards played in time (PyAV, H.264)
    sheet       boards.pdf: the printed storyboard sheet

Every file goes into the build folder under the name `storyboard.output.OutputFolder.export_file` gives it.
"""

from storyboard.export.built import Built
from storyboard.export.formats import FORMATS, Format, choose_formats, format_names
from storyboard.export.run import Exported, ExportProgress, export_built

__all__ = ["FORMATS", "Built", "ExportProgress", "Exported", "Format", "choose_formats", "export_built", "format_names"]
