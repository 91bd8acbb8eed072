"""`python -m aggregator`, and the `aggregator` command's entry point.

The command's script imports only this module, not the CLI: multiprocessing's forkserver and
spawn workers re-run the script that started their parent, so whatever it imports at the top
(the CLI: click, the pydantic config) would be loaded again, privately, in every parse worker
(~11 MB each).
"""

from __future__ import annotations


def main() -> None:
    from .cli import main as cli

    cli()


if __name__ == "__main__":
    main()
