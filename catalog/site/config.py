"""The `sigma-catalog` plugin's configuration: its options, and its entry of an mkdocs.yml for the
commands that need it without building (`catalog check`, `catalog build`).

    plugins:
      - sigma-catalog:
          rules: [rules, {path: more, name: More rules, source_url: https://...}]
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from mkdocs.config import base
from mkdocs.config import config_options as c
from mkdocs.utils.yaml import yaml_load

from catalog.model import DIALECT_NAMES

#: The rule formats the engine recognises (`SigmaDocument.dialect`).
DIALECTS = tuple(DIALECT_NAMES)

#: The plugin's name in mkdocs.yml: its entry point in pyproject.toml.
PLUGIN_NAME = "sigma-catalog"


class ConfigError(Exception):
    """The plugin's entry of an mkdocs.yml cannot be read; one line for people."""


class RuleFolderConfig(base.Config):
    """One entry of `rules`: a folder path, or a mapping with a display name and a source URL."""

    path = c.Type(str)
    name = c.Optional(c.Type(str))
    source_url = c.Optional(c.URL())

    def validate(self):
        failed, warnings = super().validate()
        url = self.get("source_url")
        if url and not url.lower().startswith(("http://", "https://")):
            failed.append(("source_url", c.ValidationError("must be an http:// or https:// URL")))
        return failed, warnings


class _RuleFolderOption(c.SubConfig[RuleFolderConfig]):
    """Accepts `- rules` as shorthand for `- path: rules`."""

    def run_validation(self, value: object) -> RuleFolderConfig:
        if isinstance(value, str):
            value = {"path": value}
        if not isinstance(value, dict):
            raise c.ValidationError(f"a rule folder is a path or a mapping with 'path', not {type(value).__name__}")
        return super().run_validation(value)


class CatalogConfig(base.Config):
    enabled = c.Type(bool, default=True)
    """Build the catalog; false leaves the site as MkDocs makes it (e.g. for a quick docs preview)."""
    rules = c.ListOfItems(_RuleFolderOption(), default=["rules"])
    """Rule folders: paths (relative to mkdocs.yml) or mappings {path, name, source_url}."""
    attack_data = c.Optional(c.Type(str))
    """A local ATT&CK Enterprise STIX bundle (.json, .json.xz, .json.gz) or a mitre/cti folder."""
    strict = c.Type(bool, default=False)
    """Fail the build, listing every rule error, when a rule file has errors."""
    base = c.Optional(c.Type(str))
    """A git revision to compare the rules with (change preview)."""
    dialects = c.ListOfItems(c.Choice(DIALECTS), default=list(DIALECTS))
    """The rule formats to publish (`sigma`, `hayabusa`); documents of the others are listed as notices."""
    history = c.Type(bool, default=True)
    """Show each rule's git history and the Recently changed page (when the rules are in a git repository)."""
    recent_commits = c.Type(int, default=50)
    """The Recently changed page lists the rules changed by this many newest commits..."""
    recent_days = c.Optional(c.Type(int))
    """...and, when set, only those of the last this many days (counted from the newest commit)."""
    cache_dir = c.Type(str, default=".cache/sigma-catalog")
    """The build cache (generated page sources, rendered pages, exports), relative to mkdocs.yml."""
    conversions = c.ListOfItems(c.Type(str), default=[])
    """Query targets for each rule page (catalog.conversions): splunk, lucene, esql, kusto, or any
    installed pySigma backend (`eql`, `eql:ecs_windows`); needs the `conversions` extra."""


class _SafeLoader(yaml.SafeLoader):
    """MkDocs' own loading (INHERIT) without acting on tags: `!ENV`, `!!python/name`... read as null."""


_SafeLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def plugin_entries(config_file: str | os.PathLike, safe: bool = True) -> list:
    """The `plugins` list of an mkdocs.yml (after INHERIT), as written; with `safe`, tags read as
    null, else they act as in MkDocs' own loading (`!ENV`, `!!python/name`)."""
    try:
        with open(config_file, "rb") as stream:
            data = yaml_load(stream, loader=_SafeLoader if safe else None)
    except Exception as error:  # MkDocs' ConfigurationError, OSError, a YAML error
        raise ConfigError(f"{os.fspath(config_file)}: {error}") from None
    plugins = data.get("plugins") if isinstance(data, dict) else None
    return list(plugins) if isinstance(plugins, list) else []


def plugin_options(config_file: str | os.PathLike) -> CatalogConfig | None:
    """The plugin's validated options in `config_file`; None when it does not use the plugin."""
    for entry in plugin_entries(config_file):
        if entry == PLUGIN_NAME or (isinstance(entry, dict) and PLUGIN_NAME in entry):
            options = entry.get(PLUGIN_NAME) if isinstance(entry, dict) else None
            config = CatalogConfig(config_file_path=os.fspath(config_file))
            config.load_dict(options if isinstance(options, dict) else {})
            failed, _ = config.validate()
            if failed:
                name, error = failed[0]
                raise ConfigError(f"{os.fspath(config_file)}: plugin {PLUGIN_NAME}, option '{name}': {error}")
            return config
    return None


def rule_folders(config_file: str | os.PathLike) -> list[str]:
    """The plugin's rule folders in `config_file` (relative to the current folder when mkdocs.yml is
    not in it); [] when the file is absent or does not use the plugin."""
    config_path = Path(config_file)
    if not config_path.is_file():
        return []
    config = plugin_options(config_path)
    if config is None:
        return []
    return [_relative_to(config_path, folder.path) for folder in config.rules]


def _relative_to(config_path: Path, folder: str) -> str:
    """Plugin paths are relative to mkdocs.yml; keep them short when mkdocs.yml is in the cwd."""
    if os.path.isabs(folder):
        return folder
    home = config_path.parent
    return folder if home in (Path(""), Path(".")) else os.path.join(os.fspath(home), folder)


def with_plugin_options(config_file: str | os.PathLike, **options: object) -> list:
    """The `plugins` list of `config_file` with the given options set on the sigma-catalog entry
    (options that are None or False are left as configured): an override for MkDocs' `load_config`."""
    chosen = {name: value for name, value in options.items() if value not in (None, False)}
    entries = []
    for entry in plugin_entries(config_file, safe=False):
        if entry == PLUGIN_NAME:
            entry = {PLUGIN_NAME: dict(chosen)}
        elif isinstance(entry, dict) and PLUGIN_NAME in entry:
            entry = {**entry, PLUGIN_NAME: {**(entry[PLUGIN_NAME] or {}), **chosen}}
        entries.append(entry)
    return entries
