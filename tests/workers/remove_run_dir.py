"""Delete this run's whole directory while the job runs (a careless `rm -rf`), then exit 0."""

import os
import shutil

shutil.rmtree(os.environ["ERUN_RUN_DIR"])
print("removed", flush=True)
