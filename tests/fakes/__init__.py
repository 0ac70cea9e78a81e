"""Test doubles: a fake Ray backend and a fake broker, kept out of the product."""
