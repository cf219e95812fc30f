"""Trial signup and free registration events: the landing-folder scanner, line validation and the raw tables."""
