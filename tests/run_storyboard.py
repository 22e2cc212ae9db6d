"""Run the storyboard CLI with the test renderers registered: `python tests/run_storyboard.py build ...`.

With $STORYBOARD_MODULES_OUT set, the top-level names of every module imported by the end are written there.
"""

import faulthandler
import os
import signal
import sys
from pathlib import Path

# A test that finds the process stuck sends SIGUSR1 for every thread's stack on stderr before killing it.
faulthandler.register(signal.SIGUSR1, all_threads=True)
# Tests send SIGINT as a terminal's Ctrl-C. A runner started in the background by a non-interactive shell has SIGINT
# ignored, and Python keeps an ignored SIGINT ignored in its children: restore what a terminal would give.
signal.signal(signal.SIGINT, signal.default_int_handler)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storyboard.cli import main  # noqa: E402
from storyboard.render import RENDERERS  # noqa: E402

RENDERERS["small"] = "small_renderers:SmallRenderer"

code = main(sys.argv[1:])
if os.environ.get("STORYBOARD_MODULES_OUT"):
    Path(os.environ["STORYBOARD_MODULES_OUT"]).write_text("\n".join(sorted({m.split(".")[0] for m in sys.modules})))
sys.exit(code)
