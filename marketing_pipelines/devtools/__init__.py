"""Developer tools (local emulators); never imported when Dagster loads the definitions."""
