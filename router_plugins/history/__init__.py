"""Chat-history compression: drop the turns a self-contained prompt does not need, shorten long blocks."""
