"""`storyboard serve`: a live page that redraws as the story file is edited, with the renderer kept loaded."""
