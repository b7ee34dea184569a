"""``tokenlog diff``: two logs or two windows of one, groups found on one side only, three formats, and the gate's
exit codes in both directions."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_tokenlog

HEADER = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens,Session,Function,LatencyMs,RequestId,Tags\n"


def _write(path: Path, *rows: tuple[str, str, int, str, str]) -> Path:
    """Rows of (day, model, total tokens, function, feature tag)."""
    lines = [
        f'{day}T10:00:00.000000+00:00,{model},{total},0,{total},,{function},,,"{{""feature"": ""{feature}""}}"\n'
        for day, model, total, function, feature in rows
    ]
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    return path


def test_growth_above_the_threshold_fails_and_a_shrink_passes(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.csv", ("2026-06-01", "mistral-small-latest", 1_000, "app.ask", "chat"))
    head = _write(tmp_path / "head.csv", ("2026-06-02", "mistral-small-latest", 1_300, "app.ask", "chat"))
    grew = run_tokenlog("diff", "base.csv", "head.csv", "--fail-above", "10", cwd=tmp_path)
    assert grew.returncode == 1, grew.stderr
    assert "+30.0%" in grew.stdout
    assert "FAIL: tokens +30.0%, cost +30.0%: more than +10%" in grew.stdout
    shrank = run_tokenlog("diff", "head.csv", "base.csv", "--fail-above", "10", cwd=tmp_path)
    assert shrank.returncode == 0, shrank.stdout
    assert "-23.1%" in shrank.stdout
    assert "OK: tokens -23.1%" in shrank.stdout
    within = run_tokenlog("diff", str(base), str(head), "--fail-above", "30", cwd=tmp_path)
    assert within.returncode == 0  # exactly +30%: not more than 30
    assert run_tokenlog("diff", "base.csv", "head.csv", cwd=tmp_path).returncode == 0  # no gate: a report only


def test_two_windows_of_one_log_and_a_model_on_one_side_only(tmp_path: Path) -> None:
    _write(
        tmp_path / "usage.csv",
        ("2026-06-01", "mistral-small-latest", 100, "app.ask", "chat"),
        ("2026-06-01", "mistral-large-latest", 50, "app.plan", "plan"),
        ("2026-06-02", "mistral-small-latest", 100, "app.ask", "chat"),
        ("2026-06-02", "codestral-latest", 400, "app.code", "code"),
    )
    done = run_tokenlog(
        "diff",
        "usage.csv",
        "--base-until",
        "2026-06-01",
        "--head-since",
        "2026-06-02",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    groups = {group["model"]: group for group in document["groups"]}
    assert groups["codestral-latest"]["tokens_change_pct"] == "new"  # not in the base window
    assert groups["codestral-latest"]["base"]["total_tokens"] == 0
    assert groups["mistral-large-latest"]["tokens_change_pct"] == -100.0  # gone from the head window
    assert groups["mistral-small-latest"]["tokens_change_pct"] == 0.0
    assert document["total"]["base"]["total_tokens"] == 150
    assert document["total"]["head"]["total_tokens"] == 500
    assert (document["failed"], document["base"]["until"][:10], document["head"]["since"][:10]) == (
        None,
        "2026-06-01",
        "2026-06-02",
    )
    by_tag = run_tokenlog(
        "diff", "usage.csv", "--base-until", "2026-06-01", "--head-since", "2026-06-02", "--by", "tag:feature",
        "--format", "markdown", "--fail-above", "100", cwd=tmp_path,
    )  # fmt: skip
    assert by_tag.returncode == 1  # 150 -> 500 tokens: +233%
    assert "| code | 0 | 400 | new |" in by_tag.stdout
    assert "| tag:feature |" in by_tag.stdout.splitlines()[0]


def test_an_unpriced_model_makes_the_cost_change_unknown_and_the_gate_reads_tokens(tmp_path: Path) -> None:
    _write(tmp_path / "base.csv", ("2026-06-01", "my-finetune", 100, "f", "x"))
    _write(tmp_path / "head.csv", ("2026-06-02", "my-finetune", 100, "f", "x"))
    done = run_tokenlog("diff", "base.csv", "head.csv", "--fail-above", "5", cwd=tmp_path)
    assert done.returncode == 0
    assert "OK: tokens +0.0%, cost unknown" in done.stdout


def test_usage_errors_exit_2_and_say_what_to_give(tmp_path: Path) -> None:
    _write(tmp_path / "usage.csv", ("2026-06-01", "mistral-small-latest", 100, "f", "x"))
    alone = run_tokenlog("diff", "usage.csv", cwd=tmp_path)
    assert alone.returncode == 2
    assert "--base-until/--head-since" in alone.stderr
    assert run_tokenlog("diff", "usage.csv", "missing.csv", cwd=tmp_path).returncode == 2
    hour = run_tokenlog("diff", "usage.csv", "usage.csv", "--by", "hour", cwd=tmp_path)
    assert hour.returncode == 2
    assert "--by hour" in hour.stderr
    when = run_tokenlog("diff", "usage.csv", "--base-until", "soon", cwd=tmp_path)
    assert when.returncode == 2
    assert "--base-until" in when.stderr
