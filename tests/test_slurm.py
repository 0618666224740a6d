"""`--executor slurm` against a real one-node SLURM cluster (scripts/slurm-cluster.sh; `tox -e slurm` starts it):
records equal to inline; a cancelled or requeued cell resumes; a time limit shorter than the cell requeues it
until it is done, and one requeued too often leaves no record but its checkpoints; Ctrl-C of the client, then a
rerun, submits no duplicate; a controller that is down and an unknown partition are one line, exit 2, nothing
written. Skipped where no cluster answers (see docs/slurm.md).

Nothing here assumes a machine of one speed: `host` measures, on the spot, how long a cell takes to start and how
long one of its steps takes, the cells' iterations and every time limit follow from that (with SLURM's own
delays added), and every job a test submits is cancelled when the test ends, however it ends."""

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import submitit
from conftest import PLUGIN, ROOT, hubbench, write_suite
from test_executors import comparable

from hubbench.benchmark.executors import signal_delay_s
from hubbench.io import read_json

CLUSTER = ROOT / "scripts" / "slurm-cluster.sh"
CONF = Path(os.environ.get("HUBBENCH_SLURM_DIR", "/tmp/hubbench-slurm"), "etc", "slurm.conf")  # the script's


def cluster_answers() -> bool:
    return subprocess.run([CLUSTER, "status"], capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.skipif(not cluster_answers(), reason="no SLURM cluster answers: as root, "
                       "scripts/slurm-cluster.sh start (or tox -e slurm); see docs/slurm.md"),
    pytest.mark.skipif("PYTEST_XDIST_WORKER" in os.environ, reason="the cluster's one node runs one job at a time, "
                       "and these tests wait on their jobs: run them in one process (-p no:xdist, as tox -e slurm)"),
]


HOLD_S = 120  # SLURM holds a requeued job about this long before it may start again (its BeginTime)
SLACK = 3  # limits are this many times the work measured, plus SLURM's delays: a busy host is no failure


@dataclass(frozen=True)
class Host:
    """What a cell of the tests' kind costs on this host now: seconds to start it (a process, its imports, its task)
    and seconds per training step."""

    start_s: float
    step_s: float

    def iterations(self, seconds: float) -> int:
        """The iterations that train for about `seconds`."""
        return max(100, round(seconds / self.step_s))

    def minutes(self) -> int:
        """The least SLURM time limit (minutes) under which each attempt of a job trains 15 s at the least: its
        window is at least 60 m less the warning's lead (a tenth, `signal_delay_s`) less 30 s (SLURM looks at time
        limits every 30 s), its start may take half again the start measured. Under 10 minutes, every warning
        counts as a time-out for submitit, as the time-limit tests need."""
        m = 1
        while 60 * m - signal_delay_s(m) - 30 - 1.5 * self.start_s < 15:
            m += 1
        assert m < 10, f"this host starts a cell in {self.start_s:.0f} s: too slow for the time-limit tests"
        return m

    def timed_s(self) -> float:
        """The training time of the time-limit test's cell: two and a half attempts' worth (an attempt trains from
        its start to SLURM's warning), so that it needs two attempts even on a host twice as fast as measured."""
        window = 60 * self.minutes() - signal_delay_s(self.minutes())
        return 2.5 * (window - self.start_s)

    def limit(self, iterations: int = 0, starts: int = 1) -> float:
        """Seconds to allow for `starts` starts of a job and `iterations` steps: `SLACK` times that, plus SLURM's
        scheduling (its look at the queue every few seconds, its 30 s look at time limits) and a requeue's hold."""
        return HOLD_S + 60 + SLACK * (starts * self.start_s + iterations * self.step_s)


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Host:
    """Measured on the spot: a 150-step cell run inline, its wall time and its record's times (the start is what
    came before the training: the process, its imports, the cell's setup; not its evaluation nor its profiling)."""
    root = tmp_path_factory.mktemp("host")
    suite = write_suite(root, "probe", methods=("scratch",), iterations=150, checkpoint_every=150, eval_every=0)
    start = time.perf_counter()
    assert run(suite, root).returncode == 0
    wall = time.perf_counter() - start
    (record,) = (root / "results").rglob("seed0.json")
    record = read_json(record)
    train_s, after_s = record["cost"]["train_s"], record["timings"]["eval_s"] + record["timings"]["profile_s"]
    return Host(start_s=wall - train_s - after_s, step_s=train_s / 150)


@pytest.fixture(autouse=True)
def cancelled_afterwards(tmp_path):
    """Every job the test submitted is cancelled when it ends (a failed test leaves no job to delay the next)."""
    yield
    ids = [job.split("_")[0] for path in tmp_path.rglob("jobs.json") for cell in read_json(path)["jobs"].values()
           for job in cell]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, env={**os.environ, "SLURM_CONF": str(CONF)})
        wait_until(lambda: scheduler("squeue", "-h", "-j", ",".join(ids)) == "", 120)


def env(root: Path, **extra) -> dict:
    return {**os.environ, "SLURM_CONF": str(CONF), "HUBBENCH_CACHE": str(root / "cache"), "HUBBENCH_PROGRESS_S": "1",
            **extra}


def run(suite: Path, root: Path, *args, **kw) -> subprocess.CompletedProcess:
    return hubbench("run", "--suite", str(suite), "--results", str(root / "results"), "--device", "cpu", *args,
                    env=kw.pop("env", None) or env(root), check=kw.pop("check", False), **kw)


def slurm(suite: Path, root: Path, *args, **kw) -> subprocess.CompletedProcess:
    return run(suite, root, "--executor", "slurm", *args, **kw)


def jobs(root: Path, suite: str) -> dict[str, list[str]]:
    return read_json(root / "results" / suite / ".submitit" / "jobs.json")["jobs"]


def wait_until(condition, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.5)


def scheduler(*command: str) -> str:
    """Run a SLURM command against the test cluster; its stdout (none if it fails: a job that has just ended)."""
    return subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "SLURM_CONF": str(CONF)}).stdout.strip()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A one-cell suite, run inline for the reference."""
    root = tmp_path_factory.mktemp("quick")
    suite = write_suite(root, "quick", methods=("scratch",))
    assert run(suite, root / "inline").returncode == 0
    return root, suite


@pytest.fixture(scope="module")
def long(tmp_path_factory, host):
    """A one-cell suite long enough to be stopped mid-way (about 40 s of training on this host), its inline
    records and its iterations."""
    root = tmp_path_factory.mktemp("long")
    n = host.iterations(40)
    suite = write_suite(root, "long", methods=("scratch",), iterations=n, checkpoint_every=5, eval_every=n // 3)
    assert run(suite, root / "inline").returncode == 0
    return root, suite, comparable(root / "inline" / "results"), n


def test_submitted_records_equal_inline_and_the_run_says_its_jobs(quick, tmp_path, host):
    root, suite = quick
    done = slurm(suite, tmp_path, timeout=host.limit(6))
    assert done.returncode == 0, done.stderr[-2000:]
    job = re.search(r"submitted 1 jobs \((\d+)\); their logs are in \S+/\.submitit", done.stderr)
    assert job and re.search(rf"\] job {job[1]}: \S+ model: 6/6 it", done.stderr)  # the job's progress, relayed
    assert comparable(tmp_path / "results") == comparable(root / "inline" / "results")
    status = hubbench("status", "--suite", str(suite), "--list", "--results", str(tmp_path / "results"),
                      env=env(tmp_path)).stdout
    assert re.search(r"tiny/digits/scratch/seed0 +done +\d+ COMPLETED", status)


def started(root: Path) -> bool:
    return bool(list((root / "cache").glob("checkpoints/*.ckpt")))


def submitting(suite: Path, root: Path, *args: str) -> subprocess.Popen:
    """`hubbench run --executor slurm` in the background, with Ctrl-C's signal handled as in a terminal: a shell's
    background job (`nohup tox -e slurm &`) ignores SIGINT, and Python keeps an ignored SIGINT ignored."""
    return subprocess.Popen([sys.executable, "-m", "hubbench.benchmark", "--plugin", str(PLUGIN), "run", "--suite",
                             str(suite), "--results", str(root / "results"), "--device", "cpu", "--executor", "slurm",
                             *args], cwd=ROOT, env=env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def training_client(suite: Path, root: Path, host: Host) -> subprocess.Popen:
    """`hubbench run --executor slurm` in the background, once its cell has written a checkpoint."""
    running = submitting(suite, root)
    wait_until(lambda: started(root), host.limit(5))
    return running


def test_scancel_mid_cell_leaves_no_record_and_a_rerun_resumes(long, tmp_path, host):
    _, suite, reference, n = long
    client = training_client(suite, tmp_path, host)
    (first,) = jobs(tmp_path, "long")["tiny/digits/scratch/seed0"]
    scheduler("scancel", first.split("_")[0])
    out, _ = client.communicate(timeout=host.limit())
    assert client.returncode == 1 and "incomplete" in out
    assert not list((tmp_path / "results").rglob("seed0.json")) and started(tmp_path)
    status = hubbench("status", "--suite", str(suite), "--list", "--results", str(tmp_path / "results"),
                      env=env(tmp_path)).stdout
    assert re.search(r"seed0 +interrupted +\d+ CANCELLED", status)
    assert slurm(suite, tmp_path, timeout=host.limit(n)).returncode == 0
    assert comparable(tmp_path / "results") == reference
    assert len(jobs(tmp_path, "long")["tiny/digits/scratch/seed0"]) == 2  # jobs.json keeps both


@pytest.mark.parametrize("how", ["requeue", "preempt"])
def test_a_requeued_or_preempted_job_resumes_to_equal_records(how, long, tmp_path, host):
    """SLURM holds the requeued job two minutes: the test starts it again 5 s after it shows as requeued."""
    _, suite, reference, n = long
    client = training_client(suite, tmp_path, host)
    (job,) = jobs(tmp_path, "long")["tiny/digits/scratch/seed0"]
    if how == "requeue":
        scheduler("scontrol", "requeue", job.split("_")[0])
    else:  # SLURM's warning signal, as at pre-emption: submitit requeues the job itself
        scheduler("scancel", "--signal=USR2", job.split("_")[0])
    out, err, _ = steer(client, tmp_path, "long", restart_after=5, limit=host.limit(n, starts=2))
    assert client.returncode == 0, err[-2000:]
    assert f"requeued: job {job} started again (attempt 2); it resumes from its checkpoints" in err
    assert comparable(tmp_path / "results") == reference
    status = hubbench("status", "--suite", str(suite), "--list", "--results", str(tmp_path / "results"),
                      env=env(tmp_path)).stdout
    assert re.search(rf"seed0 +done +{job} COMPLETED \(2 starts\)", status)


def test_ctrl_c_says_which_jobs_go_on_and_a_rerun_submits_no_duplicate(long, tmp_path, host):
    _, suite, reference, n = long
    client = training_client(suite, tmp_path, host)
    client.send_signal(signal.SIGINT)
    _, err = client.communicate(timeout=host.limit())
    (job,) = jobs(tmp_path, "long")["tiny/digits/scratch/seed0"]
    assert client.returncode == 130
    assert f"1 jobs go on without this client ({job}); a rerun does not submit them again" in err
    assert f"hubbench cancel --suite {suite}" in err and f"scancel {job}" in err
    scheduler("scontrol", "suspend", job.split("_")[0])  # it goes on, but not to its end yet

    rerun = slurm(suite, tmp_path, timeout=host.limit())
    assert rerun.returncode == 0 and re.search(rf"(running|queued) +tiny/digits/scratch/seed0 +job {job} is ",
                                               rerun.stdout), rerun.stdout
    assert jobs(tmp_path, "long")["tiny/digits/scratch/seed0"] == [job]  # not submitted again
    status = hubbench("status", "--suite", str(suite), "--list", "--results", str(tmp_path / "results"),
                      env=env(tmp_path)).stdout
    assert re.search(r"seed0 +(running|queued) +\d+", status)

    cancelled = hubbench("cancel", "--suite", str(suite), "--results", str(tmp_path / "results"),
                      env=env(tmp_path)).stdout
    assert f"long: cancelled 1 jobs: {job}" in cancelled
    wait_until(lambda: scheduler("squeue", "-h", "-j", job.split("_")[0]) == "", host.limit())
    assert slurm(suite, tmp_path, timeout=host.limit(n)).returncode == 0  # resumes from the checkpoints
    assert comparable(tmp_path / "results") == reference


def test_an_unknown_partition_is_one_line_before_anything_runs(quick, tmp_path):
    _, suite = quick
    for args in (["--slurm-partition", "nope"], ["--slurm-partition", "nope", "--dry-run"]):
        done = slurm(suite, tmp_path, *args, env=env(tmp_path, HUBBENCH_PROGRESS_S="600"))  # no "... elapsed" line
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "SLURM refuses the jobs of scratch: invalid partition specified: nope" in done.stderr
    assert not (tmp_path / "results").exists()
    assert slurm(suite, tmp_path, "--dry-run").stdout.count("the jobs: accepted by the scheduler") == 1


def test_a_controller_that_is_down_is_one_line_before_anything_runs(quick, tmp_path):
    _, suite = quick
    conf = CONF.read_text()
    down = tmp_path / "slurm.conf"
    down.write_text(re.sub(r"(?m)^SlurmctldHost=.*$", "SlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=6999", conf))
    done = slurm(suite, tmp_path, env=env(tmp_path, SLURM_CONF=str(down), HUBBENCH_PROGRESS_S="600"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "hubbench: error: the SLURM controller does not answer (is slurmctld running?" in done.stderr
    assert "Unable to contact slurm controller" in done.stderr
    assert not (tmp_path / "results").exists()
    dry = slurm(suite, tmp_path, "--dry-run", env=env(tmp_path, SLURM_CONF=str(down)))
    assert dry.returncode == 0 and re.search(r"the jobs: not checked with the scheduler: .*Unable to contact",
                                             dry.stdout)


@pytest.fixture(scope="module")
def timed(tmp_path_factory, host):
    """A one-cell suite of two and a half attempts' training on this host (`Host.timed_s`: about 2 minutes where a
    cell starts in 5 s, under a one-minute limit, SLURM's least), checkpointed at its end only, or where it is
    stopped, under the host's time limit (`Host.minutes`); its inline records and iterations."""
    root = tmp_path_factory.mktemp("timed")
    n = host.iterations(host.timed_s())
    suite = write_suite(root, "timed", methods=("scratch",), iterations=n, checkpoint_every=n, eval_every=n // 3)
    suite.write_text(suite.read_text() + f"[slurm]\ntime_min = {host.minutes()}\n")
    assert run(suite, root / "inline").returncode == 0
    return root, suite, comparable(root / "inline" / "results"), n


ATTEMPT = re.compile(r"\] start tiny/digits/scratch/seed0$")
PROGRESS = re.compile(r"model: (\d+)/\d+ it\b.*, (\d+):(\d\d):(\d\d) elapsed")


def attempts(root: Path, suite: str, job: str) -> list[list[tuple[int, int]]]:
    """(iteration, seconds trained) of each progress line in the job's log, by attempt (a requeued job appends)."""
    log = submitit.SlurmJob(root / "results" / suite / ".submitit", job).paths.stderr
    out: list[list[tuple[int, int]]] = []
    for line in log.read_text().splitlines() if log.exists() else ():
        if ATTEMPT.search(line):
            out.append([])
        elif (m := PROGRESS.search(line)) and out:
            out[-1].append((int(m[1]), int(m[2]) * 3600 + int(m[3]) * 60 + int(m[4])))
    return out


def steer(running: subprocess.Popen, root: Path, suite: str, *, restart_after: float, limit: float,
          signal_each: bool = False, after: int = 0):
    """Wait for the client `running` and its job (the cell's first after the `after` it had), for at most `limit`
    seconds: start the job again `restart_after` seconds after it shows as requeued (SLURM holds a requeued job two
    minutes; started again within the second of its requeue, its launch fails on the credential the requeue
    revoked) and, with `signal_each`, send each attempt SLURM's warning signal once it has trained a second.
    Returns the client's stdout, stderr and the job's id."""
    deadline = time.time() + limit
    folder = root / "results" / suite / ".submitit"
    wait_until(lambda: (folder / "jobs.json").exists() and len(jobs(root, suite)["tiny/digits/scratch/seed0"]) > after,
               limit)
    job = jobs(root, suite)["tiny/digits/scratch/seed0"][-1]
    held, signalled = None, 0
    while running.poll() is None:
        if time.time() > deadline:
            running.kill()
            pytest.fail(f"the client and its job {job} took over {limit:.0f} s: {running.communicate()[1][-2000:]}")
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True,
                               env={**os.environ, "SLURM_CONF": str(CONF)}).stdout.strip()
        if state == "PENDING BeginTime":
            held = held or time.time()
            if time.time() - held >= restart_after:
                scheduler("scontrol", "update", f"JobId={job}", "StartTime=now")
        else:
            held = None
        tried = attempts(root, suite, job)
        if signal_each and state.startswith("RUNNING") and len(tried) > signalled and tried[-1]:
            subprocess.run(["scancel", "--signal=USR2", job], capture_output=True,  # it may have ended meanwhile
                           env={**os.environ, "SLURM_CONF": str(CONF)})
            signalled = len(tried)
        time.sleep(0.5)
    out, err = running.communicate()
    return out, err, job


def trained_s(tried: list[list[tuple[int, int]]]) -> int:
    """The seconds each attempt trained, as far as its progress lines show, added up."""
    return sum(max((s for _, s in lines), default=0) for lines in tried)


def test_a_time_limit_shorter_than_the_cell_requeues_it_until_it_is_done(timed, tmp_path, host):
    """A time limit shorter than the cell (`Host.minutes`: one minute, SLURM's least, where a cell starts in 5 s)
    for a cell of two and a half attempts' training at the speed measured: each attempt gets SLURM's warning signal
    (asked for a tenth of the limit before it), saves a checkpoint where it is, and submitit requeues the job; the
    next attempt resumes there. Where the host has slowed down since it was measured, past submitit's three
    requeues of a time-out the job ends without a record and a rerun goes on from the checkpoints, as a user's
    would. The cell ends equal to inline, its cost every attempt's training. SLURM looks at time limits every 30 s
    and signals at the last look before the warning is due: under one minute, a job started just after a look gets
    about 25 s, one started 10 s after it about 50, so the test starts each requeued job 8 s after it shows as
    requeued (SLURM would hold it two minutes)."""
    _, suite, reference, n = timed
    deadline = time.time() + host.limit(n, starts=8) + 8 * 60 * host.minutes()
    tried, said = [], ""
    while True:  # each run: a job of at most four attempts
        before = len(jobs(tmp_path, "timed")["tiny/digits/scratch/seed0"]) if tried else 0
        running = submitting(suite, tmp_path)
        out, err, job = steer(running, tmp_path, "timed", restart_after=8, limit=deadline - time.time(), after=before)
        tried, said = tried + attempts(tmp_path, "timed", job), said + err
        if running.returncode == 0:
            break
        assert "timed-out too many times" in out and len(attempts(tmp_path, "timed", job)) == 4, err[-2000:]
    assert len(tried) >= 2 and all(tried), tried
    for stopped, resumed in itertools.pairwise(tried):
        assert resumed[0][0] > stopped[-1][0], tried  # where the last one stopped, not from the start
    assert re.search(r"requeued: job \d+ started again \(attempt 2\); it resumes from its checkpoints", said), said
    assert comparable(tmp_path / "results") == reference
    (record,) = (tmp_path / "results").rglob("seed0.json")
    assert read_json(record)["cost"]["train_s"] >= trained_s(tried)
    status = hubbench("status", "--suite", str(suite), "--list", "--results", str(tmp_path / "results"),
                      env=env(tmp_path)).stdout
    starts = len(attempts(tmp_path, "timed", job))
    assert re.search(rf"seed0 +done +{job} COMPLETED" + (rf" \(.*{starts} starts\)" if starts > 1 else ""), status)


def test_a_cell_timed_out_more_often_than_requeued_leaves_its_checkpoints_and_a_rerun_resumes(long, tmp_path, host):
    """Under a limit of less than 10 minutes each warning signal counts as a time-out for submitit, which requeues
    a job three times: at the fourth it ends the job (`UncompletedJobError` inside the cell). The cell then has no
    record, not a failed one, keeps its checkpoints, shows as interrupted, and a plain rerun resumes it to inline's
    record."""
    _, suite, reference, n = long
    running = submitting(suite, tmp_path, "--slurm-time-min", str(host.minutes()))  # long enough to start in
    out, err, job = steer(running, tmp_path, "long", restart_after=5, signal_each=True, limit=host.limit(n, starts=4))
    assert running.returncode == 1, err[-2000:]
    tried = attempts(tmp_path, "long", job)
    assert len(tried) == 4, (tried, err[-2000:])
    assert "incomplete tiny/digits/scratch/seed0" in out and "timed-out too many times" in out, out
    assert not list((tmp_path / "results").rglob("seed0.json")) and started(tmp_path)
    status = hubbench("status", "--suite", str(suite), "--list", "--results", str(tmp_path / "results"),
                      env=env(tmp_path)).stdout
    assert re.search(rf"seed0 +interrupted +{job} \w+ \(4 starts\)", status), status
    assert slurm(suite, tmp_path, timeout=host.limit(n)).returncode == 0
    assert comparable(tmp_path / "results") == reference
    (record,) = (tmp_path / "results").rglob("seed0.json")
    rerun = jobs(tmp_path, "long")["tiny/digits/scratch/seed0"][-1]
    assert read_json(record)["cost"]["train_s"] >= trained_s(tried + attempts(tmp_path, "long", rerun))
