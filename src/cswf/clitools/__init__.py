"""The pieces of the `cswf` command line that are not commands: one way to read a time, one way
to report an error, one way to load a project's settings, one way to print a table."""
