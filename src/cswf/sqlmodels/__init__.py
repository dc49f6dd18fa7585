"""Declared SQL models: dbt-style `ref()` / `source()` rendered by a sandboxed Jinja, with a
YAML file of column docs and data tests beside each model; shipped in the package and overridable
file by file by a project's own `sql/` folder. Facts and reports build their models through the
catalog here; `cswf.quality` documents and tests them."""

from cswf.sqlmodels.catalog import Catalog, Model, load_catalog
from cswf.sqlmodels.errors import ModelError

__all__ = ["Catalog", "Model", "ModelError", "load_catalog"]
