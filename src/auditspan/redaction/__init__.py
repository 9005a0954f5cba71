"""Secret redaction for captured content, error messages and metadata.

Audit records are evidence: a secret that leaks through one is copied into
every trace backend and log archive downstream. ``Redactor`` replaces each
secret it finds by a marker ``[REDACTED:<kind>]`` that holds no part of the
value, and decides per field what is captured at all (``CapturePolicy``)::

    >>> r = Redactor()
    >>> r.redact_text("curl -H 'Authorization: Bearer abc123def456' https://api")
    "curl -H 'Authorization: Bearer [REDACTED:authorization]' https://api"
    >>> r.redact_text("{'password': 'hunter2', 'max_tokens': 512}")
    "{'password': '[REDACTED:password]', 'max_tokens': 512}"
    >>> r.redact_text("postgres://app:s3cr3t@db.internal/prod")
    'postgres://app:[REDACTED:url_password]@db.internal/prod'

What is found (``kind`` in the marker):

* prefixed tokens: ``openai_key`` (``sk-``, ``sk-proj-``), ``anthropic_key``
  (``sk-ant-``), ``aws_access_key_id`` (``AKIA``/``ASIA``...), ``github_token``
  (``ghp_`` ``gho_`` ``ghu_`` ``ghs_`` ``ghr_`` ``github_pat_``),
  ``slack_token`` (``xox?-``, ``xapp-``), ``slack_webhook``, ``google_api_key``
  (``AIza``), ``stripe_key`` (``sk_live_``, ``rk_test_``, ``whsec_``), ``jwt``;
* ``bearer_token`` after ``Bearer``; ``url_password`` in
  ``scheme://user:password@host`` (user and host are kept);
* ``private_key``: a PEM ``-----BEGIN ... PRIVATE KEY-----`` block, up to its
  END line or, when the preview was cut, to the end of the text;
* the value after a *sensitive key* in ``key=value``, ``key: value``,
  ``"key": "value"``, ``'key': 'value'``, ``--key value`` forms; the kind is
  the key itself (``[REDACTED:client_secret]``); AWS secret access keys are
  caught this way (``aws_secret_access_key=...``);
* signed-URL signatures (Azure SAS ``sig=``, ``X-Amz-Signature=``,
  ``X-Goog-Signature=``) and the short keys ``pass``, ``pw``, ``pwd``: as
  sensitive keys, so only the value goes and the rest of the URL stays;
* ``command_password``: ``mysql -pSECRET`` (glued to the option: ``-p db`` names
  a database, ``-P`` is a port) and ``sshpass -p SECRET`` (``--password=...``
  is a sensitive key); ``$VARIABLE`` values name a secret and are kept;
* ``telegram_bot_token``: ``/bot<id>:<token>`` in a URL path;
* prose: ``my password is: X``, ``the api key is X`` (kind: the noun); without
  a colon the value must look random (a digit or mixed case, six characters or
  more), so "the token is required" stays;
* ``email`` addresses (``redact_emails=False`` keeps them);
* whatever the user's own ``patterns`` match.

``scrub_name`` redacts ids and names (tool, agent, session, turn, error type)
deterministically, so that they still match after redaction; it and ``scrub``
remember their results in bounded memos (``Redactor`` says what, how many, and
when they are hit).

Previews are cut at 200 characters, so the last secret of a text may be cut
short: a token prefix followed by fewer characters than a whole token is
still redacted when it ends the text (optionally followed by ``...``/``…``
and closing quotes or brackets).

How far a value reaches: a quoted value to its closing quote (or the end of
a cut text); a bracketed one (``'auth': ('user', 'pw')``) to its closing
bracket; an unquoted value after ``=`` or ``--key`` to the next white space,
``&``, ``,`` or ``;``; an unquoted value after ``:`` (YAML, HTTP headers) to
the end of the line or the next ``, key:`` pair.

What is *not* a secret here, by design (each is a complaint about scrubbers
that cannot be tuned): keys that count or describe secrets rather than hold
them (``max_tokens``, ``token_count``, ``prompt_tokens``, ``token_type``,
``secret_name``, ``api_key_id``, ``private_key_path`` -- see
``DEFAULT_NON_SENSITIVE_KEYS``; a bare ``key``, ``author``, ``passed``, the
shell's upper-case ``PWD`` and ``OLDPWD``);
values ``true``/``false``/``null``/``None``/empty under a sensitive key;
``a:secret:b`` identifier paths (ARNs); ``sk-`` inside words
(``task-sk-learn``) or followed by prose without digits or mixed case;
commit SHAs, UUIDs, URLs without a password, ``host:port``; ``user@host:path``
(scp/git syntax) is not an email; Stripe publishable keys (``pk_live_``) are
public by design. Secrets glued to the word before them (``xsk-...``) are not
recognised.

Tuning: ``patterns`` adds regexes (``(kind, regex)`` pairs name the kind; a
group named ``secret`` limits the replacement to that group), ``allow``
exempts values (a literal, or a regex that must match the *whole* secret),
``sensitive_keys`` / ``non_sensitive_keys`` replace the key-name rules (the
latter veto only the built-in ones).

Cost: a text is scanned once by one precompiled regex that combines (as
named alternatives) exactly the families of secrets whose trigger literals
the text contains (one row per family in ``_detectors.FAMILIES``: trigger,
pattern, validator); a text with none costs a few substring tests. Every
alternative is linear-time by construction, and Python code runs only on
candidate matches. A text with secrets is scanned again until nothing
changes (usually twice), which makes redaction idempotent. On this project's
2-core machines a typical 200-character preview costs about 1-4 us without a
secret and 20-30 us with two or three.
"""

from __future__ import annotations

from ._keys import DEFAULT_NON_SENSITIVE_KEYS, DEFAULT_SENSITIVE_KEYS
from ._policy import MARKER_PREFIX, REDACTION_ERROR_MARKER, CapturePolicy, is_marker, marker
from ._redactor import Redactor

__all__ = [
    "DEFAULT_NON_SENSITIVE_KEYS",
    "DEFAULT_SENSITIVE_KEYS",
    "MARKER_PREFIX",
    "REDACTION_ERROR_MARKER",
    "CapturePolicy",
    "Redactor",
    "is_marker",
    "marker",
]
