"""Prepare a build in one process: config, facts, checks, plan, build_id, the output's status.

Usage (build_tensorrt_llm.sh runs it; the stages it reports are config, probe, plan):
  prepare.py --config FILE [--profile P] --model-dir D --output DIR --staging D --cache-dir D
             --work-dir D [--dry-run] [--json] [--accept-quality-loss]

Writes into --work-dir, for the build script:
  plan.json    the plan document: schema_version, config (the resolved config, its source,
               profile and hash), facts, plan (steps, checks, estimates), inputs (build_id,
               identity, model fingerprint, adapter), status; publish.py reads it back
  steps        the step names, one a line      argv.<step>   that step's argv, NUL-separated
  build_id     the build_id        status   absent|incomplete|same|damaged|different|over_gate
  dirs         directories the build creates before its steps (the timing cache's)
  stages.tsv   NAME<TAB>SECONDS<TAB>ok per stage, for build.json
--accept-quality-loss: the steps with a quality gate get the flag in their argv (plan.json and
argv.<step>), after build_id was computed without it; status over_gate: the output holds this
build, published over its quality gate with the flag, and this run does not accept the loss.
Stdout: nothing, or with --dry-run the plan (--json: plan.json); stderr: one line per stage.
Exit codes: 0 ready to build (or a dry run whose checks passed), 2 bad input or a failed check
(one line each, with file:line: key where a config key is at fault; a dry run still prints the
plan), 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import build_config
import manifest
import plan as planning
import probe
import quality_gate
import swap
from errors import ExportError, check_error_line, failures, report

SCHEMA_VERSION = 1
PROG = "build_tensorrt_llm"


class Stages:
    """One status line per stage on stderr, and the stages file for build.json."""

    def __init__(self, work_dir: Path):
        self.path = work_dir / "stages.tsv"
        self.start = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        secs = now - self.start
        self.start = now
        print(f"{PROG}: {name:<10} ok   {secs:6.1f}s", file=sys.stderr)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(f"{name}\t{secs:.1f}\tok\n")


def prepare(args: argparse.Namespace, stages: Stages) -> dict:
    loaded = build_config.check(args.config, args.profile)
    build_config.print_issues(loaded.source, [], loaded.warnings, prog=f"{PROG}: ")
    stages.done("config")
    facts = probe.collect(str(args.output.parent))
    stages.done("probe")
    doc = planning.make_plan(
        loaded.config,
        facts,
        args.model_dir,
        args.staging,
        cache_dir=str(args.cache_dir),
        dry_run=args.dry_run,
    )
    for c in doc["checks"]:
        if c.get("key"):
            c["where"] = loaded.where(c["key"])
    inputs = manifest.build_inputs(
        loaded.hash, facts, doc, args.model_dir.resolve(), args.staging, args.cache_dir
    )
    if not args.dry_run:
        restored = swap.restore_aside(args.output)
        if restored:
            print(
                f"{PROG}: restored {args.output} from {restored.name}, left by a --force "
                "build that was stopped",
                file=sys.stderr,
            )
    _accept_quality_loss(args, doc)
    status, damage = manifest.output_status(args.output, inputs["build_id"])
    status = quality_gate.status_with_gate(status, args.output, args.accept_quality_loss)
    if status == "damaged":
        print(
            f"{PROG}: {args.output} holds this build but is damaged ({_damage(damage)}): it "
            "will be rebuilt",
            file=sys.stderr,
        )
    stages.done("plan")
    return {
        "schema_version": SCHEMA_VERSION,
        "config": loaded.document(),
        "facts": facts,
        "plan": doc,
        "inputs": inputs,
        "output": str(args.output),
        "status": status,
    }


def _accept_quality_loss(args: argparse.Namespace, plan: dict) -> None:
    if args.accept_quality_loss and not quality_gate.accept_quality_loss(plan):
        print(
            f"{PROG}: note: --accept-quality-loss changes nothing: no step of this plan measures "
            "quality",
            file=sys.stderr,
        )


def _damage(details: dict) -> str:
    parts = []
    for what in ("missing", "changed"):
        files = details.get(what) or []
        if files:
            shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
            parts.append(f"{what}: {shown}")
    return "; ".join(parts) or details.get("why", "files changed")


def write_work(work: Path, doc: dict) -> None:
    """What the build script reads: plain text and NUL-separated argv, no JSON."""
    plan = doc["plan"]
    (work / "plan.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (work / "steps").write_text("".join(f"{s['name']}\n" for s in plan["steps"]))
    for step in plan["steps"]:
        (work / f"argv.{step['name']}").write_bytes(
            b"".join(a.encode() + b"\0" for a in step["argv"])
        )
    (work / "build_id").write_text(doc["inputs"]["build_id"] + "\n")
    (work / "status").write_text(doc["status"] + "\n")
    dirs = [plan["timing_cache_dir"]] if plan.get("timing_cache_dir") else []
    (work / "dirs").write_text("".join(f"{d}\n" for d in dirs))


def dry_run_summary(doc: dict) -> str:
    output, status = doc["output"], doc["status"]
    short = doc["inputs"]["build_id"][:19]
    if status == "absent":
        return f"dry run: nothing was written; the build would create {output}"
    if status == "same":
        return f"dry run: nothing was written; {output} is up to date (build {short})"
    if status == "over_gate":
        return (
            f"dry run: nothing was written; {output} holds this build, published over its "
            "quality gate: the real run needs --accept-quality-loss to keep it (or --force)"
        )
    return f"dry run: nothing was written; {output} holds another build: the real run needs --force"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prepare.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--profile")
    for flag in ("--model-dir", "--output", "--staging", "--cache-dir", "--work-dir"):
        parser.add_argument(flag, type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--accept-quality-loss", action="store_true")
    args = parser.parse_args(argv)
    stages = Stages(args.work_dir)
    try:
        doc = prepare(args, stages)
    except build_config.ConfigError as exc:
        build_config.print_issues(exc.source, exc.issues, exc.warnings, prog=f"{PROG}: ")
        return exc.code
    except ExportError as err:
        return report(PROG, err)
    write_work(args.work_dir, doc)
    failed = failures(doc["plan"]["checks"])
    if args.dry_run:
        sys.stdout.write(
            json.dumps(doc, indent=2) + "\n" if args.json else planning.show(doc["plan"])
        )
        sys.stdout.flush()
    for c in failed:
        print(check_error_line(PROG, c), file=sys.stderr)
    if args.dry_run:
        print(f"{PROG}: {dry_run_summary(doc)}", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
