"""bench_merge.py's table: the figures of each method and a verdict for every target."""

from __future__ import annotations

import json

import bench_merge
import pytest


def row(label: str, size: str, wall: float, rss: float = 150.0, rc: int = 0) -> dict:
    memory = {"max_rss_mib": rss, "peak_tree_pss_mib": rss * 0.9, "peak_rss_anon_mib": rss / 3}
    return {"label": label, "size": size, "run": 1, "rc": rc, "wall_s": wall, **memory}


def table_of(tmp_path, rows: list[dict]) -> list[str]:
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return bench_merge.table(path).splitlines()


def test_every_target_is_met(tmp_path):
    lines = table_of(
        tmp_path,
        [row("copy", "1.5b", 3.0), row("merge_lora", "1.5b", 4.4), row("peft", "1.5b", 15.0),
         row("copy", "small", 0.2), row("merge_lora", "small", 1.1, rss=140.0)],
    )  # fmt: skip
    assert "1.5b: merge_lora/copy = 1.47 (target <= 1.5): ok" in lines
    assert "1.5b: peft/merge_lora = 3.41 (target >= 3): ok" in lines
    assert "small (< 1 GiB): merge_lora 1.10 s (target < 2 s): ok" in lines
    memory = "merge_lora peak memory by size: 1.5b 150 MiB, small 140 MiB"
    assert f"{memory} (target <= 512 MiB, flat): ok" in lines
    assert not any("MISSED" in line or "FAILED" in line for line in lines)


@pytest.mark.parametrize(
    ("rows", "missed"),
    [
        ([row("merge_lora", "1.5b", 4.6)], "1.5b: merge_lora/copy = 1.53 (target <= 1.5): MISSED"),
        ([row("merge_lora", "1.5b", 5.1)], "1.5b: peft/merge_lora = 2.94 (target >= 3): MISSED"),
        ([row("merge_lora", "1.5b", 4.0, rss=600.0)], "(target <= 512 MiB, flat): MISSED"),
        ([row("merge_lora", "1.5b", 4.0), row("merge_lora", "small", 2.2)], "small (< 1 GiB)"),
    ],
)
def test_a_missed_target_says_so(tmp_path, rows, missed):
    lines = table_of(tmp_path, [row("copy", "1.5b", 3.0), row("peft", "1.5b", 15.0), *rows])
    assert [line for line in lines if missed in line and line.endswith("MISSED")]


def test_a_failed_run_is_marked(tmp_path):
    lines = table_of(tmp_path, [row("copy", "1.5b", 3.0), row("merge_lora", "1.5b", 1.0, rc=1)])
    assert [line for line in lines if line.startswith("1.5b   merge_lora") and "FAILED" in line]
