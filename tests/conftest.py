"""Shared pytest setup. Fixtures live in plugin modules, one per area, so that
work on the broker, the agent and the CLI does not collide in one file."""
pytest_plugins = [
    "tests.fixtures_ray",
    "tests.fixtures_broker",
]
