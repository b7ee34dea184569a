"""The log tools: read what the sinks wrote, in any format, and check, repair, merge and report on it.

- :mod:`~tokenlog.logs.read`: open a CSV, JSONL or SQLite log and read its rows as CSV cells;
- :mod:`~tokenlog.logs.report`: totals and costs by model, day, session, ...;
- :mod:`~tokenlog.logs.html`: the same as one self-contained HTML page with charts;
- :mod:`~tokenlog.logs.tail`: a log followed as it grows (what a shared budget counts);
- :mod:`~tokenlog.logs.validate`: check a CSV log line by line against the format;
- :mod:`~tokenlog.logs.repair`: move broken lines of a CSV log aside, safely while writers append;
- :mod:`~tokenlog.logs.merge`: merge logs from many machines into one.

They depend only on the format contract (:mod:`tokenlog.format`), the records, locked append files and
prices; nothing that records usage imports them (import-linter checks both in CI).
"""
