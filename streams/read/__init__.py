"""The read side: projections, the history index, replay, time travel and rebuilds from the log."""
