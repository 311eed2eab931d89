"""erun's benchmark suite: `python -m bench [--quick | --smoke]` (see bench/README.md)."""
