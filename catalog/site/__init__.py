"""The catalog as a static site: an MkDocs plugin (`sigma-catalog`) and what it renders.

- `plugin`: the MkDocs plugin (config, build events, caching between `mkdocs serve` rebuilds).
- `pages`: the site model: every page's address, title and template data, built from a `Catalog`.
- `render`: the Jinja2 environment (autoescaped), the YAML highlighter and the theme frame.
- `exports`: catalog.json, the rules x techniques CSV and ATT&CK Navigator layers.
- `search`: the compact search index our search box loads.

Only `plugin` imports MkDocs; the rest works on plain data and is usable without it.
"""
