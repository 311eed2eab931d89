"""`python -m runner` is `erun`."""

from runner.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
