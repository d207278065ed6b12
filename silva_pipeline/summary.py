"""What `silva-run` and `silva-demo` print: a line per step as it finishes, and a summary at the
end, on success and on failure (what is in force, where to look, what to run next)."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from silva_app.home import DEMO_VARIABLE, HOME_VARIABLE, PROJECT_ROOT, dagster_home, demo_root
from silva_app.setup import RECORDED_TRAINING
from silva_model.train_config import option_variable
from silva_pipeline.chain import Chain
from silva_pipeline.evaluation_report import metric_lines

# From the learning curve (docs/benchmarks.md): below this, the head recovers under half of what
# the taste allows; at 500 ratings it reaches about 0.8 of the oracle.
USEFUL_RATINGS = 500
SMALL_DATA_DOC = "docs/benchmarks.md#small-data"


class StepLines:
    """One line per step as it finishes: its name, its time and its row count when it has one."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def __call__(self, events: list[dg.DagsterEvent]) -> None:
        for e in events:
            if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                meta = e.event_specific_data.materialization.metadata
                if "dagster/row_count" in meta:
                    self.rows[e.step_key] = meta["dagster/row_count"].value
            elif e.event_type == dg.DagsterEventType.STEP_SUCCESS:
                count = f"  {self.rows[e.step_key]:,} rows" if e.step_key in self.rows else ""
                seconds = e.event_specific_data.duration_ms / 1000
                print(f"  {e.step_key:<32}{seconds:7.1f} s{count}", flush=True)


def gate_line(passed: bool, description: str | None, force: str = "uv run silva-run --force-release") -> str:
    """The gate's verdict first (its numbers alone, an interval ending at +0.0000, leave it
    unsaid), and after a refusal how to release the head anyway (`force`: `forced`'s command)."""
    if passed:
        return f"release gate: passed, {description}"
    return f"release gate: refused, {description}; to release it anyway: {force}"


def _output(result: dg.ExecuteInProcessResult, node: str):
    """A step's output, or None when the run stopped before it."""
    try:
        return result.output_for_node(node)
    except Exception:  # Dagster raises its own errors for a step that did not run
        return None


LEFT_OUT = {  # asset -> (count, first named, what was left out), from each asset's metadata
    "raw_ratings": [
        ("bad_rows_count", "bad_rows_first", "rating row(s) dropped"),
        ("skipped_files", None, "file(s) in the ratings skipped"),
    ],
    "manifest": [
        (
            "conflicting_copies",
            "conflicting_copies_first",
            "rated image(s) left out: one picture under two files, rated differently (rate them alike)",
        )
    ],
    "library": [("skipped_files", None, "file(s) in the library skipped")],
    "image_embeddings": [("failed", "first_failure", "rated image(s) could not be decoded")],
    "library_embeddings": [("failed", "first_failure", "library image(s) could not be decoded")],
}


def dropped_lines(*results: dg.ExecuteInProcessResult) -> list[str]:
    """What the runs left out of the person's ratings and library, counted, the first named: never
    dropped in silence (the whole lists are the assets' metadata)."""
    counts: dict[tuple[str, str], int] = {}
    firsts: dict[tuple[str, str], str] = {}
    for result in results:
        for event in result.get_asset_materialization_events():
            m = event.event_specific_data.materialization
            for count, first, what in LEFT_OUT.get(m.asset_key.to_user_string(), []):
                n = m.metadata.get(count)
                if n is not None and n.value:
                    key = (m.asset_key.to_user_string(), what)
                    counts[key] = counts.get(key, 0) + n.value
                    if first and m.metadata.get(first) and key not in firsts:
                        firsts[key] = m.metadata[first].value
    return [
        f"{node}: {n} {what}" + (f" (first: {firsts[node, what]})" if (node, what) in firsts else "")
        for (node, what), n in counts.items()
    ]


def _print_model(result: dg.ExecuteInProcessResult, force: str) -> None:
    """The evaluation (out of fold first), the gate's verdict, and what the head learned from."""
    ev, trained = _output(result, "evaluation"), _output(result, "head")
    for line in metric_lines(ev.metrics, ev.intervals) if ev else []:
        print(line)
    for check in result.get_asset_check_evaluations():
        if check.check_name == "beats_last_release":
            print(gate_line(check.passed, check.description, force))
    if trained is not None:
        verdict = "enough" if trained.n_train >= USEFUL_RATINGS else "too few"
        useful = f"a useful head takes about {USEFUL_RATINGS} ({SMALL_DATA_DOC})"
        print(f"head: {trained.n_train:,} train ratings, {verdict}: {useful}")
        if trained.head.has_judge:
            weight = trained.head.learned_judge_weight
            print(f"judge: {trained.train_config.prior}, learned weight {weight:.3f}")


def _library_rows(result: dg.ExecuteInProcessResult | None) -> int:
    """How many images the library listed this run (0: not known)."""
    for m in result.asset_materializations_for_node("library") if result else []:
        return int(m.metadata["dagster/row_count"].value)
    return 0


def _in_force(instance: dg.DagsterInstance) -> str:
    from silva_pipeline.release_gate import last_release

    last = last_release(instance)
    if not last:
        return "none yet"
    return f"{last.get('release')}  (MLflow registry: silva-head v{last.get('registry_version')})"


def command(
    name: str, root: Path, demo: bool, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> str:
    """`uv run <name>` as it reaches this workspace from a fresh shell: the demo's flag (its own
    command takes none) and SILVA_DEMO_HOME where `env` set it; else the data root when it is not
    the project's own `.data`, and DAGSTER_HOME where set (a hint printed without them opened
    another workspace or instance); `--project` when `cwd` is outside the project (uv finds none)."""
    env = os.environ if env is None else env
    uv = "uv run" if _inside_project(cwd) else f"uv run --project {shlex.quote(str(PROJECT_ROOT))}"
    if demo:
        where = [(DEMO_VARIABLE, demo_root(env))] if env.get(DEMO_VARIABLE) else []
        flag = "" if name == "silva-demo" else " --demo"
    else:
        own = Path(root).resolve() == (PROJECT_ROOT / ".data").resolve()
        where = [] if own else [(HOME_VARIABLE, Path(root))]
        where += [("DAGSTER_HOME", dagster_home(env=env))] if env.get("DAGSTER_HOME") else []
        flag = ""
    return " ".join([*(f"{k}={shlex.quote(str(v))}" for k, v in where), f"{uv} {name}{flag}"])


def _inside_project(cwd: Path | None) -> bool:
    """Whether `uv run` finds the project from `cwd` (the current folder): inside it, or silva is
    installed rather than checked out (no project to name); a folder deleted since is outside."""
    if not (PROJECT_ROOT / "pyproject.toml").is_file():
        return True
    try:
        cwd = Path.cwd() if cwd is None else cwd
        return cwd.resolve().is_relative_to(PROJECT_ROOT.resolve())
    except FileNotFoundError:
        return False


def forced(again: str, training_env: Mapping[str, str], epochs: int | None) -> str:
    """The run's command with `--force-release`, training as this run did (its SILVA_<OPTION>
    variables and `--epochs`, which the workspace does not record): a forced run trains again,
    and so releases the head that was refused, not another."""
    variables = [f"{option_variable(k)}={shlex.quote(str(v))}" for k, v in sorted(training_env.items())]
    return " ".join([*variables, again, *([f"--epochs {epochs}"] if epochs else []), "--force-release"])


def per_run(training_env: Mapping[str, str]) -> dict[str, str]:
    """The training variables a run does not record in the workspace (a forced run re-reads the
    recorded ones, `--prior` included, from setup.yaml)."""
    return {k: v for k, v in training_env.items() if k not in RECORDED_TRAINING}


def print_summary(
    prog,
    ws,
    chain: Chain,
    verbose: bool,
    seconds: float,
    epochs: int | None = None,
    shell: Mapping[str, str] | None = None,
) -> None:
    """`shell`: the environment the command started with (the run sets DAGSTER_HOME itself)."""

    def run(name: str) -> str:
        return command(name, ws.home.root, ws.demo, shell)

    again = run(prog)
    print()
    for line in dropped_lines(*[r for r in (chain.model, *chain.shards) if r is not None]):
        print(line)
    if chain.model is not None:
        _print_model(chain.model, forced(again, per_run(ws.setup.training_env), epochs))
    with dg.DagsterInstance.from_config(str(ws.instance)) as instance:
        print(f"release in force: {_in_force(instance)}")
    if chain.loop is not None:
        scores = chain.loop.output_for_node("library_scores")
        queue = chain.loop.output_for_node("rating_queue")
        listed = _library_rows(chain.model)
        unread = (
            f" ({listed - scores.num_rows} of {listed} could not be read)" if listed > scores.num_rows else ""
        )
        print(f"library: {scores.num_rows} images scored{unread}; rating queue: {queue.num_rows} images")
    print(f"workspace: {ws.home.root} (Dagster: {ws.instance})")
    if chain.failed is None:
        print(f"see it: {run('silva-ui')}   {run('silva-mlflow')}   {run('silva rate')}")
        print(f"{prog}: done in {seconds:.0f} s; after rating, `{again}` again retrains")
        return
    failed = chain.failed
    first, *rest = failed.cause.splitlines() or ["failed"]
    print(f"{prog}: stopped at {failed.step}: {first}", file=sys.stderr)
    for line in rest:
        print(f"{prog}: {line}", file=sys.stderr)
    print(
        f"{prog}: the run's log: `{run('silva-ui')}`, then http://127.0.0.1:3000/runs/{failed.run_id}"
        + ("" if verbose else "; --verbose shows the traceback"),
        file=sys.stderr,
    )
    if verbose and failed.detail:
        print(failed.detail, file=sys.stderr)
