"""Human output: rich tables, coloured diffs, progress."""
