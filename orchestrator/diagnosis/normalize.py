"""Secret scrubbing and failure-signature normalization (pure Python, no dagster).

Two different views of one failure message:

- :func:`scrub` keeps the text readable (rules and evidence work on it) but replaces anything
  that looks like a credential with ``<secret>``. Everything that leaves this package (evidence,
  stored examples, audit payloads) goes through it first.
- :func:`normalize` turns a message into a *signature*: scrubbed, lower-cased, with ids, uuids,
  numbers, timestamps, paths, quoted identifiers, emails, URLs and hex replaced by placeholders,
  so that two occurrences of the same failure on different tables/runs/days compare equal.
"""

from __future__ import annotations

import hashlib
import re

SECRET = "<secret>"

# --- secrets -------------------------------------------------------------------------------
_KEY_NAMES = (
    r"password|passwd|pwd|pass|secret|client[_-]?secret|api[_-]?secret|token|auth[_-]?token|"
    r"access[_-]?token|refresh[_-]?token|id[_-]?token|session[_-]?token|api[_-]?key|apikey|"
    r"access[_-]?key(?:[_-]?id)?|secret[_-]?access[_-]?key|private[_-]?key|private[_-]?key[_-]?passphrase|"
    r"passphrase|credentials?|signature|sig|x-api-key|authorization"
)
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys (multi-line)
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        SECRET,
    ),
    # user:password@host in URLs / DSNs
    (re.compile(r"(?<=://)[^/\s:@'\"]+:[^/\s@'\"]+(?=@)"), SECRET),
    # Authorization headers / schemes
    (re.compile(r"(?i)\b(bearer|basic|token|digest)(\s+)[A-Za-z0-9._~+/=\-]{8,}"), r"\1\2" + SECRET),
    # key=value, key: value, "key": "value", key='value'
    (
        re.compile(
            r"(?i)([\"']?\b(?:" + _KEY_NAMES + r")\b[\"']?\s*(?:=|:)\s*)"
            r"(?:\"[^\"]*\"|'[^']*'|[^\s,;&}\])]+)"
        ),
        r"\1" + SECRET,
    ),
    # well-known token shapes
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"), SECRET),  # JWT
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), SECRET),  # AWS access key id
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"), SECRET),  # GitHub
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"), SECRET),
    (re.compile(r"\bxox[abporsi]-[A-Za-z0-9\-]{10,}"), SECRET),  # Slack
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), SECRET),  # OpenAI-style
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), SECRET),  # Google API key
    (re.compile(r"\bya29\.[0-9A-Za-z_\-]{20,}"), SECRET),  # Google OAuth access token
    (re.compile(r"\$2[aby]?\$\d{2}\$[./A-Za-z0-9]{53}"), SECRET),  # bcrypt hash
]
# Long opaque mixed-case alphanumeric strings (API keys/secrets); lowercase hex ids are left alone.
_OPAQUE = re.compile(r"(?<![A-Za-z0-9_/.\-])[A-Za-z0-9_\-+/]{32,}={0,2}(?![A-Za-z0-9_])")


def _looks_opaque(tok: str) -> bool:
    return (
        any(c.isupper() for c in tok)
        and any(c.islower() for c in tok)
        and any(c.isdigit() for c in tok)
    )


def scrub(text: str) -> str:
    """Replace credentials in ``text`` with ``<secret>``; everything else is kept."""
    if not text:
        return ""
    out = text
    for pat, repl in _SECRET_PATTERNS:
        out = pat.sub(repl, out)
    return _OPAQUE.sub(lambda m: SECRET if _looks_opaque(m.group(0)) else m.group(0), out)


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
