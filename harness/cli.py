"""The `genbench` command line: run | status | plan | claims | report | compare | list | assets.

Bad input (unknown study, method, knob, value, data set, scale) is reported in one line on
stderr with exit status 2, before any output directory is created.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genbench.harness.errors import GenbenchError, count, first_line


class _Help(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; every option's default said where it has one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.help == argparse.SUPPRESS
                or action.default in (None, False, [], argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


# each command's examples and exit status, after its options in `--help`
EPILOGS = {
    "run": """examples:
  genbench run quickstart                          # results/quickstart/smoke, a local Ray
  genbench run my_study.py --set n_feat=32 --set seeds=[0,1,2]
  genbench run ddpm_timesteps --scale full --address auto --out s3://bucket/runs/t
  genbench run quickstart --until-decided          # add seeds until its claims are decided

exit status:
  0    every trial of the study is done (ok)
  1    a trial failed or diverged, or work is left (rerun the same command to finish)
  2    bad input, found before any work starts (unknown study, key, value, data set...)
  130  interrupted (Ctrl-C), 143 terminated (SIGTERM): done work is kept""",
    "status": """examples:
  genbench status results/quickstart/smoke         # while it runs, from another shell
  genbench status s3://bucket/runs/t

exit status:
  0    the study is complete
  1    work is left (running, failed, diverged or not yet run)
  2    not a run directory""",
    "plan": """examples:
  genbench plan quickstart
  genbench plan ddpm_timesteps --scale full --address auto --calibrate

exit status:
  0    the plan fits
  1    some trial can never start on the machine or cluster
  2    bad input""",
    "claims": """examples:
  genbench claims results/quickstart/smoke
  genbench claims OUT --claim 'fid_domain: steps=50 better than steps=10' --json

exit status:
  0    every claim reproduced
  1    a claim contradicted
  3    otherwise (some inconclusive: the line says what would decide it)
  2    bad input""",
    "report": """examples:
  genbench report results/quickstart/smoke         # writes results/quickstart/smoke/report/
  genbench report RUN_A RUN_B --out /tmp/ab        # one page comparing two runs

exit status:
  0    the page is written (its path is printed)
  2    bad input (not a run directory, no readable results)""",
    "compare": """examples:
  genbench compare benchmarks/baselines/regression /tmp/cur
  genbench compare BASE CUR --json --allow-missing

exit status:
  0    no regression (and no undecided large change)
  1    a regression, or a BASE point missing in CUR
  3    no regression, but a change beyond its metric's tolerance that the seeds could not
       decide (--allow-inconclusive: 0); more seeds in both runs would decide it
  2    bad input: runs of different studies or environments (without --force), or nothing
       compared""",
    "history": """examples:
  genbench history nightly/                        # every run in the folder, oldest first
  genbench history RUN1 RUN2 RUN3 --markdown       # a PR comment
  genbench history nightly/ --ack 3f2a9c1 fid_domain "new metric protocol"

exit status:
  0    the newest run sits in no unacknowledged regression
  1    it does: a level shifted the wrong way at a commit nobody acknowledged
  2    bad input: runs of different studies or scales, fewer than two runs""",
    "list": "exit status:\n  0    always",
    "assets": """examples:
  genbench assets                                  # what is there, what is missing, and where
  genbench assets fetch                            # on a connected machine
  genbench assets build-features mnist5k

exit status:
  0    done
  2    bad input, or a download or build that failed (one line says why)""",
}


def _parser() -> argparse.ArgumentParser:
    from genbench import __version__

    p = argparse.ArgumentParser(prog="genbench", description=__doc__.splitlines()[0],
                                formatter_class=_Help,
                                epilog="`genbench COMMAND --help` for a command's options, "
                                       "examples and exit status")
    p.add_argument("--version", action="version", version=f"genbench {__version__}")
    sub = p.add_subparsers(dest="command")
    add = sub.add_parser

    def command(name: str, **kw) -> argparse.ArgumentParser:
        return add(name, formatter_class=_Help, epilog=EPILOGS[name], **kw)

    sub.add_parser = command  # (every command gets the formatter and its epilog)

    def claim_arg(sp: argparse.ArgumentParser, text: str) -> None:
        sp.add_argument("--claim", dest="claims", action="append", default=[], metavar="TEXT",
                        help=text + "; METRIC: SIDE better than SIDE [by N%%] [(all)|(mean)]")

    def study_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("study", help="a study name from studies/ or a path to a study file")
        sp.add_argument("--scale", default="smoke", help="smoke (CPU, minutes) or full (GPUs)")
        sp.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field or sampling knob (ARM.KEY for one arm), "
                             "budget_steps, budget_kimg, n_samples, seeds, metrics, log_every, "
                             "data, resolution, cpu or gpu (repeatable)")
        claim_arg(sp, "add a claim to the study's (repeatable), e.g. "
                      "'fid_domain: steps=50 better than steps=10'")
        sp.add_argument("--arm", dest="arms", action="append", default=[], metavar="NAME",
                        help="only this arm of the study (repeatable; its trials are the whole "
                             "study's: the same ids, the same rows)")
        sp.add_argument("--gpus-per-trial", type=float, metavar="G",
                        help="GPUs (or a fraction: 0.25 packs four) every trial asks for, "
                             "whatever the study and its arms declare")

    run = sub.add_parser("run", help="run a study on Ray Tune into Parquet")
    study_args(run)
    run.add_argument("--out", help="output directory, or a URI pyarrow opens (s3://, gs://, "
                                   "file://...; default results/<study>/<scale>)")
    run.add_argument("--address", help="join an existing Ray cluster: HOST:PORT of its head, auto "
                                      "(the latest `ray start` here) or ray://HOST:10001; "
                                      "default $RAY_ADDRESS, else a local Ray")
    run.add_argument("--storage", help="Tune storage path or URI; must be shared across a "
                                      "cluster's nodes (default OUT/ray)")
    run.add_argument("--no-report", action="store_true", help="do not refresh OUT/report")
    run.add_argument("--log", action="append", default=[], metavar="TRACKER[=WHERE]",
                     help="also send each trial's curves, final metrics and config to a tracker "
                          "(repeatable): tensorboard[=DIR] (default OUT/tensorboard) or "
                          "mlflow[=URI] (default sqlite:///OUT/mlflow.db) or wandb[=PROJECT] "
                          "(offline under OUT/wandb; default project: the study); optional extras")
    run.add_argument("--reuse-workers", action="store_true",
                     help="run trials in shared worker processes (saves about 4 s of process "
                          "start per trial; the memory baseline rows then include earlier "
                          "trials')")
    run.add_argument("--in-process", action="store_true",
                     help="run the trials one after another in this process, without Ray: for "
                          "a debugger (breakpoint() stops here), a profiler or a quick look; "
                          "same rows, no parallelism")
    run.add_argument("--max-failures", type=int, default=1, metavar="N",
                     help="retry a trial that raises up to N times (default 1)")
    run.add_argument("--trial-timeout", metavar="DURATION", type=_duration,
                     help="stop a trial that runs longer than DURATION (90s, 30m, 2h; a "
                          "`timeout` failure row; the others go on); default: the study's "
                          "trial_timeout_s, else none")
    run.add_argument("--until-decided", action="store_true",
                     help="after the planned seeds, add seeds to the cells of undecided claims, "
                          "in rounds sized by the seeds that would decide them, until every claim "
                          "is decided or --max-seeds is reached (rerun the command to resume)")
    run.add_argument("--max-seeds", type=int, default=10, metavar="K",
                     help="with --until-decided: at most K seeds per cell (default 10)")
    claims = sub.add_parser(
        "claims", help="test a run's claims (the study's, or --claim) without running anything",
        description="Verdicts of the claims of a run: the study's own (recorded in study.json), "
                    "or those given with --claim. Exit status: 0 every claim reproduced, 1 any "
                    "contradicted, 3 otherwise (some inconclusive), 2 bad input.")
    claims.add_argument("run", metavar="OUT", help="a run directory (or a URI)")
    claim_arg(claims, "a claim to test instead of the study's (repeatable)")
    claims.add_argument("--json", action="store_true",
                        help="print a JSON list: claim, verdict, effect, ci, p, seeds, "
                             "seeds_needed, test (null where there is no number)")
    claims.add_argument("--alpha", type=float, default=None,
                        help="family-wise error rate across the claims (default: the run's own, "
                             "else 0.05)")
    report = sub.add_parser("report", help="write a page of tables and plots from run directories")
    report.add_argument("runs", nargs="+", metavar="RUN", help="run directories or URIs "
                        "(several: one comparison page)")
    report.add_argument("--out", metavar="DIR", help="where to write the page (default: the "
                                                     "first RUN's report/)")
    report.add_argument("--static", action="store_true",
                        help="PNG charts only (default: interactive where plotly is installed, "
                             "genbench[pages], with each chart's PNG beside it)")
    status = sub.add_parser("status", help="where a study stands: done, running, failed, left, "
                                           "time left (beside a running driver, or at a URI)")
    status.add_argument("run", metavar="OUT", help="the run's --out directory or URI")
    compare = sub.add_parser(
        "compare", help="regression verdicts of CUR against BASE",
        description="Regression verdicts of CUR against BASE, beyond the noise between seeds "
                    "(docs/statistics.md), with the smallest change it could detect per metric. "
                    "Every point of BASE is judged or listed with a reason: missing in CUR or "
                    "without values there fails the gate. Exit status: 0 no regression, 1 a "
                    "regression (or a BASE point missing in CUR), 3 a change beyond its "
                    "tolerance the seeds could not decide (--allow-inconclusive: 0), 2 bad "
                    "input: runs of different studies or environments (without --force), or a "
                    "comparison that judged nothing.")
    compare.add_argument("base", metavar="BASE")
    compare.add_argument("cur", metavar="CUR")
    compare.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    compare.add_argument("--markdown", action="store_true",
                         help="print the GitHub-flavoured summary (the default; for CI scripts "
                              "that say what they post)")
    compare.add_argument("--force", action="store_true",
                         help="compare runs of different studies or environments (still warns)")
    compare.add_argument("--timings", action="store_true",
                         help="judge wall-clock metrics too (train_s, train_images_per_s, "
                              "sample_s_per_image): left out by default, since they measure the "
                              "machine and its load; for a dedicated benchmark machine")
    compare.add_argument("--no-timings", action="store_true", help=argparse.SUPPRESS)  # the default
    compare.add_argument("--allow-missing", action="store_true",
                         help="report BASE points missing in CUR without failing (a narrowed rerun)")
    compare.add_argument("--allow-inconclusive", action="store_true",
                         help="exit 0 where the only findings are changes beyond their tolerance "
                              "that the seeds could not decide (exit 3 otherwise)")
    compare.add_argument("--alpha", type=float, default=0.05,
                         help="false discovery rate over the points tested (Benjamini-Hochberg), "
                              "and so the chance of any false alarm when nothing changed; also "
                              "the intervals' level (1 - alpha)")
    hist = sub.add_parser(
        "history", help="level shifts across runs of one study, with the commit that made each",
        description="Runs of one study and scale in the order they were made, and for every "
                    "point the change points where its level shifted beyond the noise between "
                    "seeds and beyond its metric's tolerance, each at the first run after the "
                    "shift, with its commit (binary segmentation with compare's tests; "
                    "docs/statistics.md). A slow drift that adds up beyond tolerance is one change.")
    hist.add_argument("runs", metavar="RUN", nargs="+",
                      help="run directories or URIs, or a folder holding runs")
    hist.add_argument("--order", choices=("created", "given"), default="created",
                      help="by the runs' first row's time (default), or as given")
    hist.add_argument("--json", action="store_true", help="print JSON")
    hist.add_argument("--markdown", action="store_true", help="print a GitHub-flavoured summary")
    hist.add_argument("--acks", default="genbench-acks.json", metavar="FILE",
                      help="the acknowledged shifts (default: ./genbench-acks.json; keep it "
                           "beside the baseline)")
    hist.add_argument("--ack", nargs=3, metavar=("SHA", "METRIC", "REASON"),
                      help="record a known, accepted shift at commit SHA (a prefix) of METRIC "
                           "('*': any) in the acks file, then show the history")
    hist.add_argument("--page", metavar="DIR", help="also write the history page there")
    hist.add_argument("--static", action="store_true",
                      help="the page's charts as PNG images in one HTML file (default: interactive "
                           "where plotly is installed, genbench[pages])")
    hist.add_argument("--timings", action="store_true",
                      help="follow wall-clock metrics too (left out by default, as compare does)")
    hist.add_argument("--alpha", type=float, default=0.05,
                      help="false discovery rate over the points; each segment's split at "
                           "alpha / splits; the intervals' level")
    plan = sub.add_parser("plan", help="show the cells and trials of a study and how they pack "
                                       "onto this machine or a cluster")
    study_args(plan)
    plan.add_argument("--address", help="show the packing on the Ray cluster there (HOST:PORT, "
                                        "auto, ray://...; default $RAY_ADDRESS, else this machine)")
    plan.add_argument("--verbose", action="store_true",
                      help=f"list every trial and sample setting (else, past {PLAN_LINES} trials "
                           "of an arm, one line per train cell with its seeds)")
    plan.add_argument("--calibrate", nargs="?", type=int, const=20, default=0, metavar="STEPS",
                      help="time STEPS (default 20) optimiser steps and 64 samples of each train "
                           "cell (on the cluster with --address) and estimate the wall time")
    sub.add_parser("list", help="list methods, studies, data sets and metrics")
    assets = sub.add_parser("assets", help="list, fetch or build metric assets "
                                           "(Inception weights, domain feature extractors)")
    asub = assets.add_subparsers(dest="action")
    asub.add_parser("fetch", help="download the Inception weights (on a connected machine)")
    build = asub.add_parser("build-features", help="train and cache the domain classifier")
    build.add_argument("dataset")
    build.add_argument("--resolution", type=int, default=None)
    build.add_argument("--seed", type=int, default=0)
    return p


def _duration(text: str) -> float:
    """'90s', '30m', '2h', '1.5h' or plain seconds -> seconds (argparse says it in one line)."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not m or float(m[1]) <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: expected e.g. 90s, 30m, 2h")
    return float(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[m[2]]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `genbench`: what it can do
        parser.print_help()
        return 0
    try:
        return {"run": cmd_run, "plan": cmd_plan, "list": cmd_list, "assets": cmd_assets,
                "report": cmd_report, "compare": cmd_compare, "status": cmd_status,
                "claims": cmd_claims, "history": cmd_history}[args.command](args)
    except GenbenchError as err:
        print(f"genbench: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `genbench plan ... | head`: the reader left; nothing is wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # a path of the wrong kind or without permission, met while working
        import errno

        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):  # the machine's
            where = f": {err.filename}" if err.filename else ""                 # fault, not input
            print(f"genbench: error: {err.strerror or first_line(err)}{where} (done work is kept; "
                  "free space or fix the device, then rerun the same command)", file=sys.stderr)
            return 1
        print(f"genbench: error: {first_line(err, type(err).__name__)}", file=sys.stderr)
        return 2


def _plan(args):
    from genbench.harness.api import plan

    return plan(args.study, scale=args.scale, sets=args.sets,
                claims=tuple(getattr(args, "claims", ())), arms=tuple(args.arms),
                gpus_per_trial=args.gpus_per_trial,
                trial_timeout=getattr(args, "trial_timeout", None))


def cmd_run(args) -> int:
    import signal

    from genbench.harness.api import execute

    plan = _plan(args)
    out = args.out or str(Path("results") / plan.study / plan.scale)  # a path or a URI
    stopped_by: list[int] = []

    def stop(signum, frame):  # SIGTERM and SIGINT end the run: lock released, Ray stopped
        stopped_by.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    # installed explicitly: a background job of a non-interactive shell starts with SIGINT
    # ignored, and `kill -INT` must still stop it
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def echo(line: str) -> None:
        if stopped_by:  # (the page after an interruption is quick: let it finish)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(line, file=sys.stderr if line.startswith("genbench: ") else sys.stdout,
              flush=True)

    try:
        done = execute(plan, out, address=args.address, storage=args.storage, log=args.log,
                       max_failures=args.max_failures, reuse_workers=args.reuse_workers,
                       in_process=args.in_process, until_decided=args.until_decided,
                       max_seeds=args.max_seeds, report=not args.no_report, echo=echo)
    except KeyboardInterrupt:
        print(f"genbench: interrupted; rerun the same command to finish {plan.study} "
              "(done work is kept)", file=sys.stderr)
        return 143 if stopped_by and stopped_by[0] == signal.SIGTERM else 130
    return 0 if done.complete else 1


def cmd_claims(args) -> int:
    from genbench.harness.api import claims

    warnings: list[str] = []
    results = claims(args.run, claims=args.claims or None, alpha=args.alpha, warn=warnings.append)
    for w in warnings:
        print(f"genbench: warning: {w}", file=sys.stderr)
    if args.json:
        print(results.to_json())
    else:
        for r in results:
            print(r.line() + (f"  [{r.source}]" if r.source else ""))
        print(results.summary())
    return results.exit_status


def cmd_report(args) -> int:
    from genbench.harness.api import report

    page = report(args.runs, out=args.out, static=args.static,
                  warn=lambda line: print(f"genbench: warning: {line}", file=sys.stderr))
    print(f"report: {page.resolve()}")
    return 0


def cmd_compare(args) -> int:
    from genbench.harness.api import compare

    result = compare(args.base, args.cur, alpha=args.alpha, force=args.force, timings=args.timings,
                     allow_missing=args.allow_missing, allow_inconclusive=args.allow_inconclusive)
    for warning in result.warnings:
        print(f"genbench: warning: {warning}", file=sys.stderr)
    print(result.to_json() if args.json else result.to_markdown())
    return result.exit_status


def cmd_history(args) -> int:
    from genbench.harness.api import acknowledge, history, history_page

    if args.ack:
        sha, metric, reason = args.ack
        acknowledge(args.acks, sha, metric, reason)
        print(f"genbench: acknowledged {metric} at {sha} in {args.acks}: {reason}", file=sys.stderr)
    result = history(args.runs, order=args.order, alpha=args.alpha, acks=args.acks,
                     timings=args.timings)
    for warning in result.warnings:
        print(f"genbench: warning: {warning}", file=sys.stderr)
    if args.json:
        print(result.to_json())
    elif args.markdown:
        print(result.to_markdown())
    else:
        print("\n".join(result.lines()))
    if args.page:
        print(f"page: {history_page(result, args.page, static=args.static)}")
    return result.exit_status()


def cmd_plan(args) -> int:
    from genbench.harness.api import machines, notes, packing
    from genbench.harness.config import grid_text
    from genbench.harness.plan.packing import effective
    from genbench.harness.run.progress import duration_text

    if args.calibrate < 0:
        raise GenbenchError(f"--calibrate must be a positive number of steps, got {args.calibrate}")
    plan = _plan(args)
    nodes, where = machines(args.address)
    print(f"study {plan.study} [{plan.scale}] on {plan.data}, {plan.n_samples} samples per setting")
    for arm in plan.arms:
        trials = [t for t in plan.trials if t.arm == arm]
        settings = [s for s in plan.samples if s.arm == arm]
        cells = {t.config_hash for t in trials}
        how = (f"pretrained {trials[0].pretrained['ref']}" if trials[0].pretrained
               else count(trials[0].budget_steps, "step"))
        print(f"arm {arm} (method {trials[0].method}, {how}): "
              f"{count(len(cells), 'train cell')} x {count(len(trials) // max(1, len(cells)), 'seed')}"
              f" = {count(len(trials), 'trial')}; {count(len(settings), 'sample setting')} each")
        if args.verbose or len(trials) <= PLAN_LINES:
            for t in trials:
                print(f"  trial {t.trial_id}  seed {t.seed}  {effective(t.resources, nodes)}  "
                      f"{grid_text(t.cell)}")
        else:  # one line per train cell, its seeds summarised
            by_cell: dict[str, list] = {}
            for t in trials:
                by_cell.setdefault(t.config_hash, []).append(t)
            for ts in _head_tail(list(by_cell.values()), "train cells"):
                if isinstance(ts, str):
                    print(ts)
                    continue
                print(f"  cell {grid_text(ts[0].cell)}: {count(len(ts), 'seed')} "
                      f"({_seeds_text(sorted(t.seed for t in ts))})  {effective(ts[0].resources, nodes)}")
            print("  (--verbose lists every trial)")
        for s in _head_tail(settings, "sample settings") if not args.verbose else settings:
            print(s if isinstance(s, str) else f"  sample {s.key}  {grid_text(s.cell)}")
    for line in plan.merged:
        print(f"merged: {line}")
    for c in plan.stored_claims():
        print(f"claim: {c.text}" + (f"  [{c.source}]" if c.source else ""))
    for line in notes(plan):
        print(line)
    packed = packing(plan, address=args.address, calibrate=args.calibrate, nodes=(nodes, where))
    if packed.timed:
        cells = plan.cells()
        for h, c in packed.timed.items():
            t = cells[h]
            print(f"  {t.arm} {grid_text(t.cell)}: setup {c['setup_s']:.1f} s, "
                  f"{c['step_s'] * 1000:.1f} ms/step, {c['sample_s_per_image'] * 1000:.2f} ms/image "
                  f"sampling + {c['metric_s_per_image'] * 1000:.2f} ms/image metrics "
                  f"-> ~{duration_text(c['estimate_s'])} per trial; peak {c['peak_mem_mb']:.0f} MB")
        for line in packed.risks:
            print(f"  packing risk: {line}")
    schedule = packed.schedule
    print(f"packing on {where}:")
    for n in nodes:
        print(f"  node {n.name}: {n.cpu:g} CPU, {n.gpu:g} GPU: up to "
              f"{count(schedule.per_node[n.name], 'trial')} at once")
    for t, why in schedule.pending:
        print(f"  pending forever: trial {t.trial_id} (arm {t.arm}) {why}")
    placed = len(plan.trials) - len(schedule.pending)
    if placed:
        line = f"  {count(placed, 'trial')}, {schedule.at_once} at once"
        if packed.durations:
            line += f"; estimated wall time ~{duration_text(schedule.wall)} (from the calibration)"
        else:
            line += f", {count(round(schedule.wall), 'wave')} (--calibrate estimates the wall time)"
        print(line)
    if schedule.pending:
        print(f"genbench run would refuse this plan: {count(len(schedule.pending), 'trial')} can "
              "never start", file=sys.stderr)
        return 1
    return 0


PLAN_LINES = 24  # `genbench plan` lists at most this many trials (or cells) per arm unless --verbose


def _head_tail(items: list, what: str) -> list:
    """The first and last PLAN_LINES // 2 of `items`, and a line saying how many are between."""
    half = PLAN_LINES // 2
    if len(items) <= PLAN_LINES:
        return items
    return [*items[:half], f"  ... {len(items) - 2 * half} more {what} (--verbose lists them) ...",
            *items[-half:]]


def _seeds_text(seeds: list[int]) -> str:
    """0-9, or 0, 1, 2, ..., 40 where they are not consecutive."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    if len(seeds) > 5:
        return f"{seeds[0]}, {seeds[1]}, {seeds[2]}, ..., {seeds[-1]}"
    return ", ".join(map(str, seeds))


def cmd_status(args) -> int:
    from genbench.harness.api import status

    where = status(args.run)
    print(where)
    return 0 if where.complete else 1


def cmd_list(args) -> int:
    from genbench.harness import data as datasets
    from genbench.harness.method import list_methods
    from genbench.harness.metrics import (COST_METRICS, MEMORY_BASELINES, QUALITY_METRICS,
                                          TASK_METRICS, metric_names)
    from genbench.harness.plan.study import load_study, study_names

    metric_names()  # loads the quality metrics

    print("methods:  " + ", ".join(list_methods()))
    print("studies:")
    for name in study_names():
        try:
            line = load_study(name).description
        except GenbenchError as err:
            line = f"BROKEN: {err}"
        print(f"  {name:<18} {line}")
    print("data sets: " + ", ".join(datasets.dataset_names()))
    from genbench.harness.store import zoo
    from genbench.harness.config import grid_text

    models = zoo.entries()
    print("zoo (Arm(pretrained=NAME); `genbench run zoo --scale full` retrains them):"
          + ("" if models else " none shipped"))
    for e in models.values():
        m = e.metrics
        fid = m.get("values", {}).get("fid_domain")
        floor = m.get("real", {}).get("fid_domain")
        setting = grid_text(m.get("setting", {}), base="")
        measured = (f"fid_domain {fid:.1f} at {m.get('n_samples')} samples (real data {floor:.1f})"
                    + (f", {setting}" if setting else "") if fid is not None else "")
        print(f"  {e.name:<12} {e.method:<12} {measured}")
    print("metrics (cost, always recorded): " + ", ".join(COST_METRICS))
    print("metrics (quality): " + ", ".join(QUALITY_METRICS.names()))
    print("metrics (inpainting task): " + ", ".join(TASK_METRICS))
    print("facts (recorded, not judged): " + ", ".join(MEMORY_BASELINES))
    return 0


def cmd_assets(args) -> int:
    from genbench.harness.metrics import assets

    if args.action == "fetch":
        path = assets.fetch_inception()
        print(f"fetched {path} ({assets.inception_status().detail})")
    elif args.action == "build-features":
        from genbench.harness import data as datasets
        from genbench.harness.metrics.features import build_domain_extractor

        datasets.check_available(args.dataset)
        datasets.resolution_of(args.dataset, args.resolution)  # a bad one fails here, in one line
        ex = build_domain_extractor(args.dataset, args.resolution, seed=args.seed)
        print(f"cached {ex.id} (held-out accuracy {ex.accuracy:.4f})")
    print(f"assets directory: {assets.assets_dir()} (set GENBENCH_ASSETS to move it)")
    for a in assets.list_assets():
        print(f"  [{'x' if a.present else ' '}] {a.name:<28} {a.path}  {a.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
