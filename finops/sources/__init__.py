"""External systems, one module each. A source turns a window (or a file) into rows; it never
imports the store. I/O is kept apart from pure `parse_*` functions so recorded responses test them."""
