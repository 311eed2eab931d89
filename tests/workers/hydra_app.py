"""A plain Hydra app (nothing of erun): its task writes markers/start_<a> (its pid), sleeps
`sleep` seconds and returns `a`. Run with `-m hydra/launcher=erun +markers=DIR +sleep=S +a=...`."""

import os
import pathlib
import time

import hydra


@hydra.main(version_base=None, config_path=None)
def main(cfg):  # type: ignore[no-untyped-def]
    pathlib.Path(cfg.markers, f"start_{cfg.a}").write_text(str(os.getpid()))
    time.sleep(float(cfg.sleep))
    return cfg.a


if __name__ == "__main__":
    main()
