"""Ed25519 keys for the audit log's checkpoints (the ``auditspan[signing]`` extra: ``cryptography``).

``auditspan keygen DIR`` writes ``DIR/audit-signing.key`` (the private key, PEM
PKCS#8, mode 0600) and ``DIR/audit-signing.pub`` (the public key, PEM). The
writer signs with the private key (``AUDITSPAN_SIGNING_KEY`` or
``configure(signing_key=...)``); ``auditspan verify --public-key`` checks with
the public one. A key's id is the first 16 bytes of the SHA-256 of its raw
public key, in hex: every checkpoint names the key that signed it::

    signer = load_signer("audit-signing.key")   # (message) -> (key id, signature)
    key_id, signature = signer(b"...")
    keys = load_public_keys(["audit-signing.pub"])
    keys[key_id].verify(signature, b"...")       # raises InvalidSignature
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "SigningError",
    "generate_key_pair",
    "key_id",
    "load_public_keys",
    "load_signer",
    "verify_signature",
]

_INSTALL_HINT = "signing needs the 'cryptography' package: pip install 'auditspan[signing]'"


class SigningError(ValueError):
    """A key cannot be used: missing package, unreadable file, not an Ed25519 key."""


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise SigningError(_INSTALL_HINT) from exc
    return ed25519


def key_id(public_key: Any) -> str:
    """The fingerprint of an Ed25519 public key: 32 hex digits of the SHA-256 of its raw bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def load_signer(path: str | os.PathLike[str]) -> Callable[[bytes], tuple[str, bytes]]:
    """A signing function for the Ed25519 private key in the PEM file ``path`` (unencrypted PKCS#8).

    Raises ``SigningError`` saying what is wrong (never showing the key).
    """
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The loader's message could quote the file: say only what kind of problem it is.
        raise SigningError(
            f"{os.fspath(path)!r} is not an unencrypted PEM private key (make one with `auditspan keygen`)"
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SigningError(f"{os.fspath(path)!r} holds a {type(key).__name__}, not an Ed25519 private key")
    fingerprint = key_id(key.public_key())

    def sign(message: bytes) -> tuple[str, bytes]:
        return fingerprint, key.sign(message)

    return sign


def load_public_keys(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """``{key id: public key}`` of the PEM public keys (or private keys: their public half) in ``paths``."""
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    keys: dict[str, Any] = {}
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise SigningError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
        key: Any
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            try:
                key = serialization.load_pem_private_key(data, password=None).public_key()
            except (ValueError, TypeError):
                raise SigningError(f"{os.fspath(path)!r} is not a PEM Ed25519 public key") from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise SigningError(f"{os.fspath(path)!r} holds a {type(key).__name__}, not an Ed25519 key")
        keys[key_id(key)] = key
    return keys


def verify_signature(public_key: Any, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s signature of ``message``."""
    from cryptography.exceptions import InvalidSignature

    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def generate_key_pair(folder: str | os.PathLike[str], name: str = "audit-signing") -> tuple[Path, Path, str]:
    """Write ``<name>.key`` (mode 0600, refused if it exists) and ``<name>.pub`` in ``folder``.

    Returns the two paths and the key id. The private key is never printed.
    """
    ed25519 = _ed25519()
    from cryptography.hazmat.primitives import serialization

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    if public_path.exists():
        raise FileExistsError(errno.EEXIST, "exists", str(public_path))
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # O_EXCL: never overwrite a key (its checkpoints could no longer be told from forgeries).
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public_path.write_bytes(public_pem)
    return private_path, public_path, key_id(key.public_key())
