from storyboard.cli import run

run()
