"""The Pages deployment's SITE_URL reaches mkdocs.yml; without it everything works as before."""

from __future__ import annotations

from mkdocs.config import load_config

from catalog.check import default_paths
from catalog.site.config import with_plugin_options
from conftest import PROJECT

CONFIG = PROJECT / "mkdocs.yml"


def test_site_url_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SITE_URL", "https://owner.github.io/catalog/")
    assert load_config(config_file=str(CONFIG)).site_url == "https://owner.github.io/catalog/"
    monkeypatch.delenv("SITE_URL")
    assert load_config(config_file=str(CONFIG)).site_url is None


def test_commands_read_the_config_without_site_url(monkeypatch):
    monkeypatch.delenv("SITE_URL", raising=False)
    monkeypatch.chdir(PROJECT)
    assert default_paths("mkdocs.yml") == ["rules"]  # `catalog check`'s rule folders
    plugins = with_plugin_options("mkdocs.yml", base="main")  # `catalog build --base`'s override
    assert {"sigma-catalog": {"rules": [{"path": "rules", "name": "This repository's rules"}], "conversions": ["splunk", "lucene", "esql", "kusto"], "base": "main"}} in plugins
