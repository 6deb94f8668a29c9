"""What `finops serve` runs on a timer: collections with catch-up, the FOCUS drop folder, the weekly files."""
