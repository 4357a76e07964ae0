"""Sigma rule catalog generator: analyse a repository of Sigma rules and publish it as a static site."""

__version__ = "0.1.0"
