"""Scrubbing: credentials and personal data out of any text that leaves the process (pure Python).

Every sink goes through here: the LLM context (field by field, :func:`scrub_obj`), the digest,
the project store (failure memory, rationales, audit payloads), the failure messages the project
raises into Dagster run events and their metadata, the approval pages, and every log record
(:func:`install_log_scrubbing`, installed when ``orchestrator`` is imported).

- :func:`scrub` replaces credentials with ``<secret>``: the literal values of the secrets this
  process is configured with (:func:`configured_secrets`: connector keys, SMTP password, approval
  secret, LLM key, store/warehouse credentials, any variable named like a secret), known token
  shapes (AWS, GitHub, GitLab, Slack, OpenAI, Stripe, SendGrid, Google, JWT, bcrypt, PEM and PGP
  private key blocks, webhook URLs), ``user:password@`` in URLs (the password may contain ``@``),
  ``key=value`` / ``"key": "value"`` forms, a secret named in prose ("the password is X",
  "Invalid API key FTKEY-..."), and long opaque mixed-case tokens.
- :func:`scrub_pii` adds personal data: e-mail addresses, SSNs, card numbers, IBANs, phone
  numbers (international, NANP, E.164, "phone: 4155550123"), IPv4/IPv6 addresses.
"""

from __future__ import annotations

import re

from orchestrator import perf as _perf

SECRET = "<secret>"

# --- secrets -------------------------------------------------------------------------------
_KEY_NAMES = (
    r"password|passwd|pwd|pass|secret|client[_-]?secret|api[_-]?secret|token|auth[_-]?token|"
    r"access[_-]?token|refresh[_-]?token|id[_-]?token|session[_-]?token|api[_-]?key|apikey|"
    r"access[_-]?key(?:[_-]?id)?|secret[_-]?access[_-]?key|private[_-]?key|private[_-]?key[_-]?passphrase|"
    r"passphrase|credentials?|signature|sig|x-api-key|authorization|account[_-]?key|shared[_-]?access[_-]?key|"
    r"webhook[_-]?url|dsn|connection[_-]?string"
)
# "the password is X", "client secret is X", "Invalid API key FTKEY-...": a secret named in prose
_PROSE_NAMES = (
    r"password|passwd|passphrase|pass\s?word|secret|client[ _-]?secret|api[ _-]?secret|api[ _-]?key|"
    r"access[ _-]?key|secret[ _-]?key|private[ _-]?key|(?:access|auth|bearer|refresh|session|api)[ _-]?token"
)
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PEM / PGP private keys (multi-line), an unterminated block up to the end of the text
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|$)",
            re.S,
        ),
        SECRET,
    ),
    # webhook URLs carry their secret in the path
    (re.compile(r"(?i)https?://hooks\.slack\.com/(?:services|workflows|triggers)/[^\s'\"<>]+"), SECRET),
    (re.compile(r"(?i)https?://(?:[\w-]+\.)?discord(?:app)?\.com/api/webhooks/[^\s'\"<>]+"), SECRET),
    (re.compile(r"(?i)https?://[\w.-]+\.webhook\.office\.com/[^\s'\"<>]+"), SECRET),
    # user:password@host in URLs / DSNs (the password may itself contain '@': up to the last one)
    (re.compile(r"(?<=://)[^/\s:@'\"]*:[^\s/'\"]*(?=@[^@\s/'\"]+)"), SECRET),
    # Authorization headers / schemes
    (re.compile(r"(?i)\b(bearer|basic|token|digest)(\s+)[A-Za-z0-9._~+/=\-]{8,}"), r"\1\2" + SECRET),
    # key=value, key: value, "key": "value", key='value'
    (
        re.compile(
            r"(?i)([\"']?\b(?:[A-Za-z0-9]+[_-])*(?:" + _KEY_NAMES + r")\b[\"']?\s*(?:=|:)\s*)"
            r"(?:\"[^\"]*\"|'[^']*'|[^\s,;&}\])]+)"
        ),
        r"\1" + SECRET,
    ),
    # prose: "<name> is|was|of|for X" (quoted or a word), "Invalid API key FTKEY-..."
    (
        re.compile(
            r"(?i)(\b(?:" + _PROSE_NAMES + r")s?\b(?:\s+(?:is|was|were|of|set\s+to|=|:))?\s+)"
            r"(?:\"[^\"\n]+\"|'[^'\n]+'|`[^`\n]+`|(?=[^\s]*[\d_\-+/=@!#$%^&*])(?![^\s]*://)[^\s,;]{6,})"
        ),
        r"\1" + SECRET,
    ),
    (
        re.compile(r"(?i)(\b(?:password|passwd|passphrase|secret)s?\s+(?:is|was|=|:)\s+)(?!<secret>)[^\s,;.]{3,}"),
        r"\1" + SECRET,
    ),
    # well-known token shapes
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"), SECRET),  # JWT
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"), SECRET),  # AWS key ids
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"), SECRET),  # GitHub
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"), SECRET),
    (re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}"), SECRET),  # GitLab
    (re.compile(r"\bxox[abporsie]-[A-Za-z0-9\-]{10,}"), SECRET),  # Slack
    (re.compile(r"\bxapp-\d-[A-Za-z0-9\-]{10,}"), SECRET),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), SECRET),  # OpenAI / Anthropic style
    (re.compile(r"\b(?:sk|rk|pk|whsec)_(?:live|test)_[A-Za-z0-9]{10,}"), SECRET),  # Stripe
    (re.compile(r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"), SECRET),  # SendGrid
    (re.compile(r"\bnpm_[A-Za-z0-9]{30,}\b"), SECRET),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), SECRET),  # Hugging Face
    (re.compile(r"\bpypi-[A-Za-z0-9_\-]{30,}"), SECRET),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), SECRET),  # Google API key
    (re.compile(r"\bya29\.[0-9A-Za-z_\-]{20,}"), SECRET),  # Google OAuth access token
    (re.compile(r"\b1//0[0-9A-Za-z_\-]{30,}"), SECRET),  # Google refresh token
    (re.compile(r"\$2[aby]?\$\d{2}\$[./A-Za-z0-9]{53}"), SECRET),  # bcrypt hash
    (re.compile(r"\b[A-Z]{2,8}KEY-[A-Za-z0-9_\-]{8,}"), SECRET),  # vendor-prefixed keys (FTKEY-...)
]
# Screens: what a text must contain for a pattern to match (same order as _SECRET_PATTERNS).
# ``None``: always run it; ``(False, literals)``: one of these literals, in the text as it is;
# ``(True, literals)``: one of them in the lower-cased text; ``(True, regex)``: the regex found in
# the lower-cased text (a part of the pattern itself, so a necessary condition). Lower-cased
# screens apply only when the text is ASCII ((?i) matches a few non-ASCII letters such as the
# Kelvin sign or the long s as ASCII ones): otherwise the pattern runs. A pattern is skipped only
# when its screen says it cannot match, so the result is the reference result
# (``orchestrator.perf.disabled()`` runs every pattern; tests/test_scrubbing_fastpath.py compares).
_REQUIRES: list[tuple[bool, tuple[str, ...] | re.Pattern[str]] | None] = [
    (False, ("-----BEGIN ",)),
    (True, ("hooks.slack.com",)),
    (True, ("discord",)),
    (True, (".webhook.office.com",)),
    (False, ("://",)),
    (True, ("bearer", "basic", "token", "digest")),
    # key=value: the key name, its closing quote and the '=' / ':' (the costliest pattern: it
    # tries every position of every message; this screen is about six times cheaper)
    (True, re.compile(r"(?:" + _KEY_NAMES + r")\b[\"']?\s*[=:]")),
    # prose: the name, then white space (the optional "is|was|..." part also starts with it)
    (True, re.compile(r"(?:" + _PROSE_NAMES + r")s?\b\s")),
    (True, re.compile(r"(?:password|passwd|passphrase|secret)s?\s+(?:is|was|=|:)\s")),
    (False, ("eyJ",)),
    (False, ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA")),
    (False, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    (False, ("github_pat_",)),
    (False, ("glpat-",)),
    (False, ("xox",)),
    (False, ("xapp-",)),
    (False, ("sk-",)),
    (False, ("_live_", "_test_")),
    (False, ("SG.",)),
    (False, ("npm_",)),
    (False, ("hf_",)),
    (False, ("pypi-",)),
    (False, ("AIza",)),
    (False, ("ya29.",)),
    (False, ("1//0",)),
    (False, ("$2",)),
    (False, ("KEY-",)),
]
assert len(_REQUIRES) == len(_SECRET_PATTERNS)
# Every literal of the case-sensitive screens in one alternation: when it finds none of them in
# the text, every case-sensitive-screened pattern is skipped at once (one scan instead of ~20).
_CS_ANY = re.compile("|".join(re.escape(lit) for req in _REQUIRES if req is not None and not req[0]
                              for lit in req[1]))
# (pattern, replacement, lower-cased?, literals or None, screen regex or None) per pattern
_PLAN: list[tuple[re.Pattern[str], str, bool | None, tuple[str, ...] | None, re.Pattern[str] | None]] = [
    (pat, repl, None if req is None else req[0],
     None if req is None or isinstance(req[1], re.Pattern) else req[1],
     req[1] if req is not None and isinstance(req[1], re.Pattern) else None)
    for (pat, repl), req in zip(_SECRET_PATTERNS, _REQUIRES)
]

# Long opaque mixed-case alphanumeric strings (API keys/secrets); lowercase hex ids are left alone.
_OPAQUE = re.compile(r"(?<![A-Za-z0-9_/.\-])[A-Za-z0-9_\-+/]{32,}={0,2}(?![A-Za-z0-9_])")

# --- personal data ---------------------------------------------------------------------------
_EMAIL = re.compile(r"(?i)\b[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+\b")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6 = re.compile(r"(?i)(?<![\w:])(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}(?![\w:])|(?<![\w:])(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,5})?(?![\w:])")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_PHONE = re.compile(
    r"(?<![\w-])\+?\d{1,3}[\s.-]?\(?\d{2,4}\)?[\s.-]\d{3,4}[\s.-]\d{3,4}(?![\w-])"  # +1 415 555 2671
    r"|(?<![\w-])\(\d{3}\)\s?\d{3}[\s.-]\d{4}(?![\w-])"  # (415) 555-2671
    r"|(?<![\w.-])\d{3}[\s.-]\d{3}[\s.-]\d{4}(?![\w-])"  # 415-555-2671, 415.555.2671
    r"|(?<![\w+])\+\d{8,15}\b"  # E.164
)
_PHONE_WORD = re.compile(r"(?i)\b(phone|tel|mobile|cell)(\s*[:=#.]?\s*)\d{7,15}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){13,16}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")

# --- the literal values of the secrets this project is configured with -----------------------
# Named variables (connector keys, SMTP, approval secret, LLM key, warehouse / store credentials)
# plus any variable whose name says it holds a secret. Values shorter than MIN_LITERAL are left
# alone (a 3-character "password" would redact every word containing it).
SECRET_ENV_VARS = (
    "FIVETRAN_API_KEY", "FIVETRAN_API_SECRET", "AIRBYTE_CLIENT_ID", "AIRBYTE_CLIENT_SECRET", "AIRBYTE_PASSWORD",
    "AIRBYTE_API_KEY", "SMTP_PASSWORD", "SMTP_USERNAME", "ORCHESTRATOR_APPROVAL_SECRET", "OPENAI_API_KEY",
    "DAGSTER_PG_PASSWORD", "ORCHESTRATOR_STORE_URL", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY",
    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "BIGQUERY_CREDENTIALS", "GOOGLE_CREDENTIALS", "DATABASE_URL",
)
_SECRET_ENV_NAME = re.compile(
    r"(?i)(SECRET|PASSWORD|PASSWD|PASSPHRASE|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL|ACCESS_KEY|_DSN$|DATABASE_URL|STORE_URL)"
)
def _looks_opaque(tok: str) -> bool:
    return (
        any(c.isupper() for c in tok)
        and any(c.islower() for c in tok)
        and any(c.isdigit() for c in tok)
    )


MIN_LITERAL = 6
_extra_literals: set[str] = set()
_literal_cache: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)


def register_secret(value: str | None) -> None:
    """Redact this literal value everywhere from now on (e.g. a secret read from a file)."""
    if value and len(value) >= MIN_LITERAL:
        _extra_literals.add(value)


_secrets_memo: tuple[dict, frozenset[str], object, frozenset[str]] | None = None


def configured_secrets() -> frozenset[str]:
    """The literal secret values this process is configured with (environment and settings).

    Recomputed only when the environment, the registered literals or the settings loader changed
    (every scrub asks; walking ``os.environ`` each time was half of diagnosis time). The settings
    are read from the environment only (no dotenv file, no secrets directory: see
    ``orchestrator.settings.Settings``), so an unchanged environment gives unchanged settings
    secrets; a replaced ``get_settings`` (tests) starts over."""
    global _secrets_memo
    import os
    import sys

    if not _perf.enabled():
        return _configured_secrets()

    env = getattr(os.environ, "_data", None)
    if not isinstance(env, dict):
        env = dict(os.environ)
    loader = getattr(sys.modules.get("orchestrator.settings"), "get_settings", None)
    memo = _secrets_memo
    if memo is not None and memo[2] is loader and env == memo[0] and _extra_literals == memo[1]:
        return memo[3]
    values = _configured_secrets()
    _secrets_memo = (dict(env), frozenset(_extra_literals), loader, values)
    return values


def _configured_secrets() -> frozenset[str]:
    import os
    from urllib.parse import unquote, urlsplit

    out: set[str] = set(_extra_literals)
    for name, value in os.environ.items():
        if not value or not (name in SECRET_ENV_VARS or _SECRET_ENV_NAME.search(name)):
            continue
        if len(value) >= MIN_LITERAL and name not in ("ORCHESTRATOR_STORE_URL", "DATABASE_URL"):
            out.add(value)
        if "://" in value:  # a DSN: its password (and the user, when it is long enough)
            try:
                parts = urlsplit(value)
                if parts.password and len(unquote(parts.password)) >= 4:
                    out.update({parts.password, unquote(parts.password)})
            except ValueError:
                pass
    for value in _settings_secrets():
        if len(value) >= MIN_LITERAL:
            out.add(value)
    # encoded forms a message may carry
    from urllib.parse import quote

    out.update({quote(v, safe="") for v in list(out) if quote(v, safe="") != v})
    return frozenset(v for v in out if len(v) >= 4)


def _settings_secrets() -> list[str]:
    try:
        from orchestrator.settings import get_settings

        s = get_settings()
    except Exception:  # settings are optional for the decision core
        return []
    vals = []
    for name in ("smtp_password", "approval_secret"):
        v = getattr(s, name, None)
        if v is not None:
            vals.append(v.get_secret_value() if hasattr(v, "get_secret_value") else str(v))
    return vals


def _literal_pattern() -> re.Pattern[str] | None:
    global _literal_cache
    values = configured_secrets()
    if values != _literal_cache[0]:
        pat = (re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))
               if values else None)
        _literal_cache = (values, pat)
    return _literal_cache[1]


def scrub(text: str) -> str:
    """Replace credentials in ``text`` with ``<secret>``; everything else is kept.

    The literal values of configured secrets go first (whatever their shape), then the known
    credential shapes and ``key=value`` / prose forms, then long opaque mixed-case tokens."""
    if not text:
        return ""
    out = str(text)
    lit = _literal_pattern()
    if lit is not None:
        out = lit.sub(SECRET, out)
    if not _perf.enabled():  # the reference path: every pattern, no screen
        for pat, repl in _SECRET_PATTERNS:
            out = pat.sub(repl, out)
        return _OPAQUE.sub(_opaque_repl, out)
    low: str | None = None  # the lower-cased text when it is ASCII, "" when it is not
    cs_any: bool | None = None  # a case-sensitive screen literal is in the text
    for pat, repl, lowered, lits, pre in _PLAN:
        if lowered is None:
            pass
        elif lowered:
            if low is None:
                low = out.lower() if out.isascii() else ""
            if low:
                if pre is not None:
                    if pre.search(low) is None:
                        continue
                elif not any(lit in low for lit in lits):
                    continue
        else:
            if cs_any is None:
                cs_any = _CS_ANY.search(out) is not None
            if not cs_any or not any(lit in out for lit in lits):
                continue
        new = pat.sub(repl, out)
        if new != out:
            out, low, cs_any = new, None, None
    return _OPAQUE.sub(_opaque_repl, out)


def _opaque_repl(m: re.Match[str]) -> str:
    return SECRET if _looks_opaque(m.group(0)) else m.group(0)


def scrub_pii(text: str | None) -> str:
    """:func:`scrub` (credentials) plus personal data: e-mails, IPs, SSNs, phones, cards, IBANs."""
    if not text:
        return ""
    out = scrub(str(text))
    out = _EMAIL.sub("<email>", out)
    out = _SSN.sub("<ssn>", out)
    out = _CARD.sub("<number>", out)
    out = _IBAN.sub("<iban>", out)
    out = _PHONE_WORD.sub(r"\1\2<phone>", out)
    out = _PHONE.sub("<phone>", out)
    out = _IPV4.sub("<ip>", out)
    out = _IPV6.sub("<ip>", out)
    return out


def scrub_obj(obj):
    """Scrub every string inside a JSON-like structure (keys included), field by field: the
    result serialises to valid JSON (never scrub serialised JSON as text: ``key=value`` at the
    end of a string would eat its closing quote)."""
    if isinstance(obj, str):
        return scrub_pii(obj)
    if isinstance(obj, dict):
        return {scrub_pii(str(k)): scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_obj(v) for v in obj]
    return obj


# --- logs ------------------------------------------------------------------------------------
_LOG_INSTALLED = False


def scrub_log(text: str) -> str:
    """What a log line may carry: credentials and personal data redacted; only loopback and
    unspecified addresses (what a service binds to) are kept."""
    if not text:
        return text
    out = scrub(text)
    out = _EMAIL.sub("<email>", out)
    out = _SSN.sub("<ssn>", out)
    out = _CARD.sub("<number>", out)
    out = _IBAN.sub("<iban>", out)
    out = _PHONE_WORD.sub(r"\1\2<phone>", out)
    out = _PHONE.sub("<phone>", out)
    keep = ("127.0.0.1", "0.0.0.0", "::1", "::")
    out = _IPV4.sub(lambda m: m.group(0) if m.group(0) in keep else "<ip>", out)
    return _IPV6.sub(lambda m: m.group(0) if m.group(0) in keep else "<ip>", out)


def install_log_scrubbing() -> None:
    """Scrub every log record this process creates (any logger: ours, uvicorn's, dagster's):
    the message is formatted once and scrubbed, and an exception's text is scrubbed too."""
    import logging

    global _LOG_INSTALLED
    if _LOG_INSTALLED:
        return
    _LOG_INSTALLED = True
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # a broken format string: keep the record as it is  # noqa: BLE001
            return record
        clean = scrub_log(msg)
        if clean != msg or record.args:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            import traceback

            record.exc_text = scrub_log("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    logging.setLogRecordFactory(factory)
