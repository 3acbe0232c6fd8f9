"""Helpers the tests share: fixtures of data, models and runners that no one test module owns."""
