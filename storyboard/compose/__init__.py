"""The compositor: a story's pages (`book`, `page`), its text set into lines (`typeset`) and font subsets, and the
PNG, PDF and HTML pages drawn into the boxes of one layout (`storyboard.geometry`)."""
