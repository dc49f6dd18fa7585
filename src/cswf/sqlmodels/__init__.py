"""Declared SQL models: dbt-style `ref()` / `source()`, YAML docs and data tests, shipped in the
package and overridable by a project's own `sql/` folder."""
