"""Apps written as an app author would, against authdemo's public API only."""
