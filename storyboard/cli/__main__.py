import sys

from storyboard.cli import main

sys.exit(main())
