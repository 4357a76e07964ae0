"""The catalog as a static site: an MkDocs plugin (`sigma-catalog`) and what it renders.

- `config`: the plugin's options, and its entry of an mkdocs.yml (for `catalog check` and `build`).
- `addresses`: every page address, slug and link.
- `model`: pages, the site, what every page family shares (`SiteData`), grouping helpers.
- `rule_page`, `attack_pages`, `browse_pages`, `changes_page`: one page family each.
- `pages`: the whole site model of one build (`SiteBuilder`).
- `exports`, `search`: catalog.json, the CSV, ATT&CK Navigator layers; the compact search index.
- `render`: the Jinja2 environment (autoescaped), the YAML highlighter and the theme frame.
- `output`: writing our pages (in parallel, or through the page cache of `mkdocs serve`), the load cache.
- `files`, `plugin`: what the catalog adds to MkDocs' files; the plugin's events.

Only `config`, `files` and `plugin` import MkDocs; the rest works on plain data and is usable without it.
"""
