"""A real two-node Slurm cluster on loopback for the cluster tests (Debian's slurm-wlm and munge).

munged with its own key and socket, slurmctld, and two slurmd on this host (`slurmd -N n1`,
`slurmd -N n2`, each with its own Port= and NodeAddr=127.0.0.1), everything in one temporary
folder; the node names resolve to loopback through /etc/hosts lines added at start and removed
at stop. No cgroups, no systemd: proctrack/linuxproc, task/none, no accounting. Needs root.
`stop()` cancels every job, waits for their slurmstepd to go, stops the daemons and removes the
folder: nothing is left behind.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

NODES = ("n1", "n2")
CPUS_PER_NODE = 4
PARTITION = "debug"
START_TIMEOUT_S = 20.0
# Step credentials' lifetime, which is also how long a requeued job waits before it may start
# again (Slurm's default: 120 s; the preemption test requeues a job).
CRED_EXPIRE_S = 10
HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARK = "# erun-test-slurm"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scancel", "sinfo", "squeue", "scontrol")


def missing() -> str | None:
    """Why this machine cannot run the test cluster (None: it can)."""
    lacking = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if lacking:
        return (f"Slurm is not installed ({', '.join(lacking)} missing; "
                "apt-get install slurm-wlm munge, as scripts/setup.sh does)")
    if os.geteuid() != 0:
        return "the test Slurm cluster needs root (slurmd runs jobs as their user)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    """The cluster; `env` is what a client command needs (SLURM_CONF)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="erun-slurm-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        # Its own mark: a cluster of another test session keeps its lines when this one stops.
        self.hosts_mark = f"{HOSTS_MARK} {self.root.name}"

    # -- start ------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._add_hosts()
            self._start_munge()
            self._write_conf()
            self._spawn([_binary("slurmctld"), "-D", "-i", "-f", str(self.conf)], "slurmctld")
            for node in NODES:
                self._spawn([_binary("slurmd"), "-D", "-N", node, "-f", str(self.conf)], f"slurmd-{node}")
            self._wait_idle()
        except BaseException:
            self.stop()
            raise

    def _add_hosts(self) -> None:
        text = HOSTS_FILE.read_text()
        lines = [f"127.0.0.1 {node} {self.hosts_mark}" for node in NODES]
        HOSTS_FILE.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")

    def _start_munge(self) -> None:
        # munged runs as the munge user: its key 0400 owned by munge, every folder above its
        # socket traversable (mkdtemp makes 0700).
        self.root.chmod(0o755)
        munge = self.root / "munge"
        munge.mkdir(mode=0o755)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        shutil.chown(munge, "munge", "munge")
        shutil.chown(key, "munge", "munge")
        self.socket = munge / "munge.socket"
        argv = [_binary("munged"), "-F", "--force",
                f"--key-file={key}", f"--socket={self.socket}", f"--pid-file={munge / 'munged.pid'}",
                f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}"]
        self._spawn(argv, "munged", user="munge")
        self._wait(lambda: self.socket.exists(), "munged's socket")

    def _write_conf(self) -> None:
        ports = {node: free_port() for node in NODES}
        for folder in ("state", *(f"spool-{n}" for n in NODES)):
            (self.root / folder).mkdir()
        nodes = "\n".join(f"NodeName={n} NodeAddr=127.0.0.1 Port={p} CPUs={CPUS_PER_NODE} State=UNKNOWN"
                          for n, p in ports.items())
        r = self.root
        self.conf.write_text(f"""\
ClusterName=erun-test
SlurmctldHost={socket.gethostname()}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket},cred_expire={CRED_EXPIRE_S}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool-%n
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd-%n.pid
SlurmctldLogFile={r}/slurmctld.log
SlurmdLogFile={r}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
JobRequeue=1
FirstJobId={random.randrange(1000, 9000) * 10}
ReturnToService=2
SlurmdParameters=config_overrides
MpiDefault=none
SwitchType=switch/none
KillWait=5
{nodes}
PartitionName={PARTITION} Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
""")

    def _spawn(self, argv: list[str], name: str, user: str | None = None) -> None:
        with (self.root / f"{name}.out").open("wb") as out:
            self.procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                               stdin=subprocess.DEVNULL, user=user, group=user,
                                               extra_groups=[] if user else None))

    def ready_nodes(self) -> None:
        """Both nodes idle before a test submits: a node Slurm drained after an earlier test (a
        task it could not kill in time) is resumed, so no job pends behind it for ever."""
        out = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False).stdout
        if any(not line.split()[-1].startswith(("idle", "mix", "alloc")) for line in out.splitlines()):
            self.run(["scontrol", "update", f"NodeName={','.join(NODES)}", "State=RESUME"], check=False)
        self._wait_idle()

    def _wait_idle(self) -> None:
        def idle() -> bool:
            out = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False).stdout
            return sorted(line.split()[-1] for line in out.splitlines()) == ["idle"] * len(NODES)
        self._wait(idle, "both nodes idle")

    def _wait(self, predicate: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if callable(predicate) and predicate():
                return
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.1)
        raise RuntimeError(f"test Slurm cluster: no {what} within {START_TIMEOUT_S:g} s\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for log in sorted(self.root.glob("*.out")) + sorted(self.root.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    # -- use --------------------------------------------------------------------------------

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30, check=check)

    def jobs(self) -> list[str]:
        """Ids of the jobs Slurm still knows as pending or running."""
        return self.run(["squeue", "-h", "-o", "%i"], check=False).stdout.split()

    def steps_alive(self) -> list[psutil.Process]:
        """This cluster's slurmstepd processes (they outlive slurmd) and anything they started.
        A step keeps its node's slurmd log open, which is under this cluster's folder: another
        cluster on the host (a parallel test session) is not counted."""
        found = []
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] == "slurmstepd":
                try:
                    if any(Path(f.path).is_relative_to(self.root) for f in proc.open_files()):
                        found += [proc, *proc.children(recursive=True)]
                except psutil.Error:
                    pass
        return found

    def erun_processes(self) -> list[psutil.Process]:
        """erun processes inside this cluster's jobs (srun of the node agents, the agents),
        wherever they were reparented: they carry the job's environment."""
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                env = proc.environ() if "runner" in " ".join(proc.info["cmdline"] or []) else {}
                if "SLURM_JOB_ID" in env and env.get("SLURM_CONF") == str(self.conf):
                    found.append(proc)
            except psutil.Error:
                pass
        return found

    def drain_jobs(self, timeout: float = 30.0) -> None:
        """Cancel every job and wait until no job and no step process is left."""
        if self.conf.exists():
            self.run(["scancel", "--full", "--quiet", *self.jobs()], check=False) if self.jobs() else None
        deadline = time.monotonic() + timeout
        while (self.jobs() or self.steps_alive()) and time.monotonic() < deadline:
            time.sleep(0.2)

    # -- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        try:
            if self.procs and self.procs[-1].poll() is None:
                self.drain_jobs()
        finally:
            for proc in reversed(self.procs):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            for proc in self.steps_alive():  # only after a failed drain
                proc.kill()
            self._remove_hosts()
            shutil.rmtree(self.root, ignore_errors=True)

    def _remove_hosts(self) -> None:
        text = HOSTS_FILE.read_text()
        kept = [line for line in text.splitlines() if not line.endswith(self.hosts_mark)]
        if len(kept) != len(text.splitlines()):
            HOSTS_FILE.write_text("\n".join(kept) + "\n")


def run_dir_of(stdout: str) -> Path:
    """The run directory `erun ... cluster=slurm` printed when it submitted."""
    import re

    found = re.search(r"erun: submitted Slurm job (\d+); run directory (\S+)", stdout)
    assert found, stdout
    return Path(found.group(2))
