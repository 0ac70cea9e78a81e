"""Ray fixtures: a real local Ray cluster started once per test session."""
