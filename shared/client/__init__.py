"""The client side: the `cauce` command, submitting files, and reading runs a page at a time."""
