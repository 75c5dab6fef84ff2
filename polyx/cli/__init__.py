"""The typer CLI: app.py assembles one module per command group; commands parse options and call library code."""
