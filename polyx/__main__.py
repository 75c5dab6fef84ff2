from polyx.cli.app import entry

entry()
