"""Secret scrubbing and failure-signature normalization (pure Python, no dagster).

Two different views of one failure message:

- :func:`scrub` (from :mod:`orchestrator.scrubbing`) keeps the text readable (rules and evidence
  work on it) but replaces anything that looks like a credential with ``<secret>``. Everything
  that leaves this package (evidence, stored examples, audit payloads) goes through it first.
- :func:`normalize` turns a message into a *signature*: scrubbed, lower-cased, with ids, uuids,
  numbers, timestamps, paths, quoted identifiers, emails, URLs and hex replaced by placeholders,
  so that two occurrences of the same failure on different tables/runs/days compare equal.
"""

from __future__ import annotations

import hashlib
import re

from orchestrator.scrubbing import (  # noqa: F401 (re-exported: this is where scrubbing used to live)
    SECRET,
    configured_secrets,
    install_log_scrubbing,
    register_secret,
    scrub,
    scrub_log,
    scrub_obj,
    scrub_pii,
)

# --- signature normalization -----------------------------------------------------------------
_PLACEHOLDERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://(?:<secret>|[^\s'\"<>)\]])+"), " <url> "),
    (re.compile(r"(?i)\b[\w.+\-]+@[\w\-]+\.[\w.\-]+\b"), " <email> "),
    (re.compile(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), " <uuid> "),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        ),
        " <ts> ",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), " <ts> "),
    # quoted identifiers / values
    (re.compile(r"\"[^\"\n]{0,200}\"|'[^'\n]{0,200}'|`[^`\n]{0,200}`|\[[^\[\]\n]{1,80}\]"), " <q> "),
    # file-system paths (unix and windows)
    (re.compile(r"(?:(?<=\s)|^|(?<=[(=:]))(?:[A-Za-z]:\\|~?/|\./|\.\./)[^\s:,'\"()]+"), " <path> "),
    (re.compile(r"\b[\w.\-]+(?:/[\w.\-]+)+\.[A-Za-z]{1,5}\b"), " <path> "),
    (re.compile(r"(?i)\b0x[0-9a-f]+\b"), " <hex> "),
    (re.compile(r"(?i)\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b"), " <hex> "),
    (re.compile(r"\b\d+(?:[.,]\d+)*\b"), " <num> "),
]
_WS = re.compile(r"\s+")
_TOKEN = re.compile(r"<[a-z]+>|[a-z][a-z0-9_]*")

# Lines that carry no diagnostic signal (stack frames, log prefixes) are dropped from signatures.
_NOISE_LINE = re.compile(
    r"^\s*(?:at [\w$.<>]+\(|File \"|\.\.\.|\^+$|~+$|-+$|=+$|\d+ more$|Traceback \(most recent)"
)
_LOG_PREFIX = re.compile(
    r"^\s*(?:\d{4}-\d{2}-\d{2}[T ][\d:.,]+\s*(?:Z|[+-]\d{2}:?\d{2})?\s*|\d{2}:\d{2}:\d{2}(?:\.\d+)?\s*)"
    r"(?:\[[^\]]*\]\s*)*(?:(?:INFO|WARN|WARNING|ERROR|DEBUG|SEVERE|FATAL)\s*)?(?:\|\s*)?"
)


# A stack frame names where code ran, not what failed (Python ``File "...", line N, in f``; Java/Scala/
# Kotlin ``at pkg.Class.method(File.java:12)``; JavaScript ``at fn (/path/file.js:1:2)``; ``... N more``).
# Rules skip such lines: a module called ``timeout.py`` or ``config.py`` in a trace is no evidence of a
# timeout or a configuration error (the label guide labels what the message itself shows).
_FRAME_LINE = re.compile(
    r'File "[^"\n]*", line \d+(?:, in \S+)?\s*$|at (?:async )?[\w$.<>/\[\]-]+ ?\([^()]*(?:\.\w+:\d+|:\d+:\d+|'
    r'Native Method|Unknown Source)\)\s*$|\.\.\. \d+ (?:more|common frames omitted)\s*$')


def is_frame_line(line: str) -> bool:
    """Whether ``line`` (stripped) is a stack-frame line: a code location, no failure wording."""
    head = line[:5]
    if head != 'File ' and head[:3] != 'at ' and head[:4] != '... ':
        return False
    return _FRAME_LINE.match(line) is not None


def normalize(text: str, max_chars: int = 2000) -> str:
    """Normalized signature of a failure message (scrubbed, placeholders, lower case)."""
    lines = []
    for raw in scrub(text or "").splitlines():
        if _NOISE_LINE.match(raw):
            continue
        line = _LOG_PREFIX.sub("", raw)
        for pat, repl in _PLACEHOLDERS:
            line = pat.sub(repl, line)
        line = _WS.sub(" ", line).strip().lower()
        if line:
            lines.append(line)
    sig = " | ".join(lines)
    return sig[:max_chars]


def signature_hash(signature: str) -> str:
    return hashlib.sha256(signature.encode("utf-8")).hexdigest()


def tokens(signature: str) -> list[str]:
    """Word tokens of a normalized signature (placeholders kept as single tokens)."""
    return _TOKEN.findall(signature.lower())


def char_ngrams(signature: str, n: int = 4) -> list[str]:
    s = " " + _WS.sub(" ", re.sub(r"<[a-z]+>", "#", signature)) + " "
    return [s[i : i + n] for i in range(max(0, len(s) - n + 1))]
