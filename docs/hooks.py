"""MkDocs hooks.

- The API reference is generated here, one page per public package, one entry per name of its
  ``__all__`` (so a new public name gets its entry without anyone editing a page; ``tests/test_docs.py``
  checks that each is rendered).
- The committed results (benchmark tables, plots, reports) are published beside the pages, so a page links
  the file a number comes from (``results/...``, ``reports/...``) without a copy in docs/.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from mkdocs.structure.files import File

PUBLISHED = {"benchmarks/results": "results", "reports": "reports"}
SUFFIXES = {".png", ".md", ".json", ".csv"}
# page -> (title, packages); the order of the reference section
API_PAGES = {
    "attacks": ("fastsegadv.attacks", ["attacks"]),
    "losses": ("fastsegadv.losses", ["losses"]),
    "ops": ("fastsegadv.ops", ["ops"]),
    "metrics": ("fastsegadv.metrics", ["metrics"]),
    "models": ("fastsegadv.models", ["models"]),
    "data": ("fastsegadv.data and fastsegadv.datasets", ["data", "datasets"]),
    "training": ("fastsegadv.training", ["training"]),
    "evaluation": ("fastsegadv.evaluation", ["evaluation"]),
    "distributed": ("fastsegadv.distributed", ["distributed"]),
    "studies": ("fastsegadv.studies", ["studies"]),
}


def reference_path(package: str, name: str) -> str:
    """The dotted path mkdocstrings should render for ``fastsegadv.<package>.<name>``: where a submodule has
    the name of the function it exports (``attacks.pgd``), the object inside that module."""
    full = f"fastsegadv.{package}.{name}"
    module = importlib.import_module(f"fastsegadv.{package}")
    obj = getattr(module, name)
    is_package = hasattr(module, "__path__")
    if is_package and importlib.util.find_spec(full) is not None and getattr(obj, "__module__", None):
        return f"{obj.__module__}.{name}"
    return full


def api_page(title: str, packages: list[str]) -> str:
    lines = [f"# {title}", ""]
    for package in packages:
        module = importlib.import_module(f"fastsegadv.{package}")
        lines += [f"::: fastsegadv.{package}", "    options:", "      members: false",
                  "      show_root_heading: true", ""]
        for name in module.__all__:
            lines += [f"::: {reference_path(package, name)}", "    options:", "      heading_level: 3", ""]
    return "\n".join(lines)


def on_files(files, config):
    root = Path(config["docs_dir"]).resolve().parent
    for page, (title, packages) in API_PAGES.items():
        files.append(File.generated(config, f"api/{page}.md", content=api_page(title, packages)))
    for folder, url in PUBLISHED.items():
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and " " not in path.name:
                uri = f"{url}/{path.relative_to(root / folder).as_posix()}"
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
