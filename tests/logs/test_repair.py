"""``tokenlog repair``: broken lines go to a side file verbatim; the header and valid rows stay, byte for byte.

Files cut by real SIGKILLed writers are repaired in tests/reliability/test_faults_sigkill.py; here, every other kind
of broken line, the exit statuses, and the files repair refuses.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.helpers import LOG_HEADER, LOG_ROW, run_tokenlog
from tokenlog.logs.repair import broken_path, repair_log

ROW2 = LOG_ROW.replace("10:00:00", "10:00:01")


def repair(*args: str, cwd: Path) -> tuple[int, str]:
    result = run_tokenlog("repair", *args, cwd=cwd)
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout + result.stderr


def notes_and_lines(side: Path) -> list[tuple[str, bytes]]:
    """The side file as (note, moved bytes) pairs: each moved line follows the note that says where it was."""
    lines = side.read_bytes().splitlines(keepends=True)
    return [(note.decode(), moved) for note, moved in zip(lines[::2], lines[1::2], strict=True)]


def test_a_valid_log_is_left_untouched_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{LOG_HEADER}\n{LOG_ROW}\n")
    before = os.stat(path)
    status, output = repair(str(path), cwd=tmp_path)
    assert status == 0
    assert f"OK: {path} has no broken lines (1 row); nothing changed" in output
    assert os.stat(path).st_ino == before.st_ino  # not even rewritten
    assert not (tmp_path / "usage.broken.csv").exists()


BROKEN_LINES = {
    "cut-short": "2026-06-01T10:00:02.1",
    "too-few-fields": "2026-06-01T10:00:02+00:00,m,1,2",
    "bad-count": "2026-06-01T10:00:02+00:00,m,x,1,1",
    "wrong-total": "2026-06-01T10:00:02+00:00,m,1,1,3",
    "repeated-header": LOG_HEADER,
    "blank": "",
    "nul": "2026-06-01T10:00:02+00:00,m\x00,1,1,2",
    "stray-quote": '2026-06-01T10:00:02+00:00,m"x,1,1,2',
}


@pytest.mark.parametrize("kind", sorted(BROKEN_LINES))
def test_a_broken_line_moves_to_the_side_file_verbatim_with_its_line_number_and_why(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "usage.csv"
    bad = BROKEN_LINES[kind].encode() + b"\n"
    path.write_bytes(f"{LOG_HEADER}\n{LOG_ROW}\n".encode() + bad + f"{ROW2}\n".encode())
    status, output = repair(str(path), cwd=tmp_path)
    assert status == 1, output
    assert f"MOVED: 1 broken line of {path} to {tmp_path / 'usage.broken.csv'} (lines 3)" in output
    assert path.read_text() == f"{LOG_HEADER}\n{LOG_ROW}\n{ROW2}\n"
    ((note, moved),) = notes_and_lines(tmp_path / "usage.broken.csv")
    assert re.fullmatch(rf"# tokenlog repair, \S+: {re.escape(str(path))} line 3: .+\n", note)
    assert moved == bad
    assert run_tokenlog("validate", str(path), cwd=tmp_path).returncode == 0


OTHER_FORMS = [
    "2026-06-01T10:00:01Z,mistral-small-latest,12,5,17",
    "2026-06-01T12:00:02.5+02:00,mistral-small-latest,1,1,2",
    "2026-06-01 10:00:03.123456+00:00,mistral-small-latest,2,2,4",
]


def test_whole_rows_with_timestamps_in_another_iso_form_stay_in_place(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    kept = f"{LOG_HEADER}\n{LOG_ROW}\n" + "".join(row + "\n" for row in OTHER_FORMS)
    path.write_text(kept + "2026-06-01T10:00:04Z,mistral-sm\n")  # and one line cut short
    status, output = repair(str(path), cwd=tmp_path)
    assert status == 1, output
    assert f"MOVED: 1 broken line of {path}" in output
    assert "(lines 6)" in output
    assert path.read_text() == kept
    assert "tokenlog repair --normalize" in output  # says how to rewrite the timestamps


def test_a_log_of_z_timestamps_is_not_emptied(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    text = f"{LOG_HEADER}\n" + "".join(f"2026-06-01T10:00:0{i}Z,mistral-small-latest,1,1,2\n" for i in range(5))
    path.write_text(text)
    status, output = repair(str(path), cwd=tmp_path)
    assert status == 0, output
    assert path.read_text() == text
    assert not (tmp_path / "usage.broken.csv").exists()


def test_normalize_rewrites_timestamps_in_utc_and_the_log_then_validates(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{LOG_HEADER}\n{LOG_ROW}\n" + "".join(row + "\n" for row in OTHER_FORMS))
    assert run_tokenlog("validate", str(path), cwd=tmp_path).returncode == 1
    status, output = repair("--normalize", str(path), cwd=tmp_path)
    assert status == 0, output
    assert f"NORMALIZED: 3 timestamps of {path} in UTC (lines 3, 4, 5)" in output
    assert path.read_text() == (
        f"{LOG_HEADER}\n{LOG_ROW}\n"
        "2026-06-01T10:00:01.000000+00:00,mistral-small-latest,12,5,17\n"
        "2026-06-01T10:00:02.500000+00:00,mistral-small-latest,1,1,2\n"
        "2026-06-01T10:00:03.123456+00:00,mistral-small-latest,2,2,4\n"
    )
    assert not (tmp_path / "usage.broken.csv").exists()
    assert run_tokenlog("validate", str(path), cwd=tmp_path).returncode == 0


def test_normalize_of_a_log_already_in_utc_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{LOG_HEADER}\n{LOG_ROW}\n")
    before = os.stat(path)
    status, output = repair("--normalize", str(path), cwd=tmp_path)
    assert (status, os.stat(path).st_ino) == (0, before.st_ino)
    assert "nothing changed" in output


def test_bytes_that_are_not_utf8_are_kept_exactly(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    bad = b"2026-06-01T10:00:02+00:00,caf\xe9\xff,1,1,2\n"
    path.write_bytes(f"{LOG_HEADER}\n".encode() + bad + f"{LOG_ROW}\n".encode())
    assert repair(str(path), cwd=tmp_path)[0] == 1
    assert notes_and_lines(tmp_path / "usage.broken.csv")[0][1] == bad


def test_a_last_line_without_a_line_break_is_moved_and_the_note_says_a_break_was_added(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{LOG_HEADER}\n{LOG_ROW}\n2026-06-01T10:00:01.1")
    assert repair(str(path), cwd=tmp_path)[0] == 1
    ((note, moved),) = notes_and_lines(tmp_path / "usage.broken.csv")
    assert "line 3 (it had no line break at its end: one is added here)" in note
    assert moved == b"2026-06-01T10:00:01.1\n"
    assert path.read_text() == f"{LOG_HEADER}\n{LOG_ROW}\n"


def test_a_row_spanning_lines_moves_whole_and_is_named_by_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    spanning = '2026-06-01T10:00:02+00:00,"two\nlines",1,1,3\n'  # a quoted line break, and a wrong total
    path.write_text(f"{LOG_HEADER}\n{spanning}{LOG_ROW}\n")
    status, output = repair(str(path), cwd=tmp_path)
    assert status == 1
    assert "(lines 2-3)" in output
    note, moved = (tmp_path / "usage.broken.csv").read_bytes().split(b"\n", 1)
    assert b"lines 2-3: " in note  # one note for both lines
    assert moved == spanning.encode()


def test_a_quoted_field_left_open_by_a_killed_writer_moves_alone_and_the_rows_after_it_stay(tmp_path: Path) -> None:
    """A log written before tokenlog closed the quote of a cut line: csv readers would swallow the next rows."""
    path = tmp_path / "usage.csv"
    cut = '2026-06-01T10:00:02.000000+00:00,"mistral, sm\n'
    path.write_text(f"{LOG_HEADER}\n{cut}{LOG_ROW}\n{ROW2}\n")
    check = run_tokenlog("validate", str(path), cwd=tmp_path)
    assert f"{path}:2: is cut short inside a quoted field" in check.stdout
    assert check.stdout.count(f"{path}:") == 1
    assert repair(str(path), cwd=tmp_path)[0] == 1
    assert path.read_text() == f"{LOG_HEADER}\n{LOG_ROW}\n{ROW2}\n"
    assert notes_and_lines(tmp_path / "usage.broken.csv")[0][1] == cut.encode()


def test_a_second_repair_appends_to_the_side_file(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    for bad in ("first,broken", "second,broken"):
        path.write_text(f"{LOG_HEADER}\n{bad}\n{LOG_ROW}\n")
        assert repair(str(path), cwd=tmp_path)[0] == 1
    assert [moved for _, moved in notes_and_lines(tmp_path / "usage.broken.csv")] == [
        b"first,broken\n",
        b"second,broken\n",
    ]


def test_a_header_with_a_byte_order_mark_stays_as_it_is_and_is_noted(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{LOG_HEADER}\nbroken\n{LOG_ROW}\n".encode())
    status, output = repair(str(path), cwd=tmp_path)
    assert status == 1
    assert "note: the header is left as it is:" in output
    assert "byte order mark" in output
    assert path.read_bytes() == b"\xef\xbb\xbf" + f"{LOG_HEADER}\n{LOG_ROW}\n".encode()


def test_crlf_line_breaks_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_bytes(f"{LOG_HEADER}\r\nbroken\r\n{LOG_ROW}\r\n".encode())
    assert repair(str(path), cwd=tmp_path)[0] == 1
    assert path.read_bytes() == f"{LOG_HEADER}\r\n{LOG_ROW}\r\n".encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"date,tokens\n2026-01-01,5\n", "is not a tokenlog CSV log: its first line is 'date,tokens'"),
        (f"{LOG_ROW}\n".encode(), "is not a tokenlog CSV log"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not a tokenlog CSV log"),
        (b'{"timestamp": "2026-06-01T10:00:00+00:00"}\n', "is not a tokenlog CSV log"),
    ],
)
def test_a_file_that_is_not_a_tokenlog_csv_log_is_refused_and_left_alone(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "usage.csv"
    path.write_bytes(content)
    status, output = repair(str(path), cwd=tmp_path)
    assert status == 2
    assert message in output
    assert "Nothing changed" in output
    assert path.read_bytes() == content
    assert not (tmp_path / "usage.broken.csv").exists()


def test_an_empty_file_has_nothing_to_repair(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.touch()
    assert repair(str(path), cwd=tmp_path) == (0, f"OK: {path} has no broken lines (0 rows); nothing changed\n")


def test_a_symlink_is_followed_and_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "data" / "usage.csv"
    real.parent.mkdir()
    real.write_text(f"{LOG_HEADER}\nbroken\n{LOG_ROW}\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert repair(str(link), cwd=tmp_path)[0] == 1
    assert link.is_symlink()
    assert real.read_text() == f"{LOG_HEADER}\n{LOG_ROW}\n"
    assert (tmp_path / "data" / "usage.broken.csv").exists()  # beside the file itself


def test_a_file_with_other_hard_links_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{LOG_HEADER}\nbroken\n")
    os.link(path, tmp_path / "other-name.csv")
    status, output = repair(str(path), cwd=tmp_path)
    assert status == 2
    assert "has other hard links" in output
    assert path.read_text() == f"{LOG_HEADER}\nbroken\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [(["missing.csv"], "missing.csv: no such file"), (["."], "is a directory"), (["--lock-timeout", "-1", "x"], "")],
)
def test_usage_errors_exit_2_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    status, output = repair(*args, cwd=tmp_path)
    assert status == 2
    assert message in output


def test_the_permissions_of_the_log_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"{LOG_HEADER}\nbroken\n")
    path.chmod(0o640)
    repair_log(path)
    assert path.stat().st_mode & 0o777 == 0o640


def test_the_side_file_is_named_after_the_log() -> None:
    assert broken_path("/logs/usage.csv") == "/logs/usage.broken.csv"
    assert broken_path("/logs/usage") == "/logs/usage.broken.csv"
    assert broken_path("/logs/usage.log") == "/logs/usage.broken.log"
