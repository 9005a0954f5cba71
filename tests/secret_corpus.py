"""The fake-secret corpus of tests/data/secrets/, shared by the redaction and end-to-end tests.

``secrets.txt``: one fake credential a line, ``kind<TAB>value`` or ``kv<TAB>key<TAB>value``,
with a ``|`` inside each value (removed on reading) so that secret scanners leave the file
alone, and ``\\n`` for new lines. ``lookalikes.txt``: texts that must pass unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data" / "secrets"

# Prefixes that only name a secret's kind (public); what follows them is the secret.
_KIND_PREFIXES = ("sk-ant-", "sk-proj-", "sk-svcacct-", "sk-", "github_pat_", "whsec_", "eyJ")
_KIND_PREFIX_LENGTH = {
    "stripe_key": 8,
    "github_token": 4,
    "aws_access_key_id": 4,
    "google_api_key": 4,
    "slack_token": 5,
}


#: Kinds that are secrets only in their context (issue 14's families): how runtimes write them.
_IN_CONTEXT = {
    "azure_sas": "GET https://acct.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&sp=r&se=2026-01-01T00:00Z&sig={}",
    "aws_presigned": "https://bkt.s3.amazonaws.com/k.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600"
    "&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
    "gcs_signed": "https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature={}",
    "telegram_bot_token": "GET https://api.telegram.org/bot{}/getUpdates",
    "mysql_password": "mysql -h db.internal -u app -p{} prod",
    "sshpass_password": "sshpass -p {} ssh -p 22 deploy@build.example.net",
    "cli_password": "pg_dump --password={} --host db.internal prod",
    "prose_password": "fyi my password is: {} thanks",
    "prose_api_key": "the api key is {}, use it",
}
#: Kinds that are not standalone tokens (found only in their context).
CONTEXT_KINDS = frozenset({"kv", "url_password", "bearer_token", "slack_webhook", *_IN_CONTEXT})


@dataclass(frozen=True)
class Secret:
    """A fake secret of the corpus."""

    kind: str
    value: str
    key: str = ""

    @property
    def visible_prefix(self) -> int:
        """Characters at the start that identify the kind but hold nothing secret."""
        if self.kind == "private_key":
            return self.value.index("\n") + 1
        if self.kind == "email":
            return self.value.index("@") + 2
        for prefix in _KIND_PREFIXES:
            if self.value.startswith(prefix):
                return len(prefix)
        return _KIND_PREFIX_LENGTH.get(self.kind, 0)

    @property
    def hidden(self) -> str:
        """The part that must never appear in any output."""
        if self.kind == "email":
            return self.value[: self.value.index("@")]  # the mailbox; the domain may be public
        if self.kind == "private_key":  # between the BEGIN and END lines (both are public boilerplate)
            return self.value[self.visible_prefix : self.value.rindex("\n-----END")]
        return self.value[self.visible_prefix :]

    @property
    def in_context(self) -> str:
        """The secret as runtimes write it into a text."""
        if self.kind == "kv":
            return f"{self.key}={self.value}"
        if self.kind == "url_password":
            return f"postgres://app:{self.value}@db.internal:5432/prod"
        if self.kind == "bearer_token":
            return f"curl -H 'Authorization: Bearer {self.value}' https://api.acme.test/v1"
        if self.kind == "slack_webhook":
            return f"POST https://hooks.slack.com/services/{self.value}"
        if self.kind in _IN_CONTEXT:
            return _IN_CONTEXT[self.kind].format(self.value)
        return f"using {self.value} now"

    def pieces(self) -> set[str]:
        """Every 8-character piece of the hidden part: none may appear anywhere."""
        hidden = self.hidden
        return {hidden[i : i + 8] for i in range(max(len(hidden) - 7, 1))}


def unescape(text: str) -> str:
    return text.replace("|", "").replace("\\n", "\n")


def load_secrets() -> list[Secret]:
    secrets: list[Secret] = []
    for line in (DATA / "secrets.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if fields[0] == "kv":
            secrets.append(Secret("kv", unescape(fields[2]), key=fields[1]))
        else:
            secrets.append(Secret(fields[0], unescape(fields[1])))
    return secrets


def load_lookalikes() -> list[str]:
    lines = (DATA / "lookalikes.txt").read_text(encoding="utf-8").splitlines()
    return [unescape(line) for line in lines if line.strip() and not line.startswith("#")]
