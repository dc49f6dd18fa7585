"""The Dagster project of this repository's demo (cswf.yaml at the repository root).

Not part of the cswf package: it is what `dg dev` loads here, and the shape a project made by
`cswf init` has (docs/dagster.md, "A project for dg").
"""
