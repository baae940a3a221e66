"""gradtrace's benchmark: recording and rendering cost as ratios to a plain run in the same process."""
