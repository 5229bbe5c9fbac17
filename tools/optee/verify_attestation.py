#!/usr/bin/python3
"""Checks what the omg TA got from OP-TEE's attestation PTA, independently of OP-TEE and of the
Rust code, with Python's `cryptography` only (a minimal CBOR decoder is below). The files of DIR
(written in the emulated machine by optee/host) are the PTA's RSA public key (`exponent`,
`modulus`, big-endian), a verifier's `nonce`, and:

- `evidence`: the TA's raw evidence for `nonce`: the SHA-256 of the TA's memory followed by an
  RSASSA-PSS signature (SHA-256, MGF1-SHA-256, 32-byte salt) of
  SHA-256("omg optee raw evidence v1" || nonce) || hash;
- `token`: the TA's attestation token over `nonce` (docs/protocol.md, "The OP-TEE token"): a
  COSE_Sign1 (ES256) whose protected header -65537 carries the ephemeral key, the TA hash and
  the PTA's signature of binding || hash, binding = SHA-256("omg optee token v1" || ephemeral
  SEC1 key || SHA-256(payload)).

Exits 0 when the signatures verify, a changed hash or nonce does not, the token's claims name
this nonce, this device (0x01 || SHA-256(modulus)) and the evidence's TA hash, and a token with a
changed claim does not verify.

    verify_attestation.py DIR
"""
import hashlib
import struct
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

RAW_LABEL = b"omg optee raw evidence v1"
BINDING_LABEL = b"omg optee token v1"
OPTEE_PROFILE = "tag:omg.example.invalid,2026:eat-psa-optee-v1"


class Tag:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


def cbor_decode(data: bytes):
    """One definite-length CBOR item spanning all of `data` (what omg's tokens use)."""

    def item(i):
        if i >= len(data):
            raise ValueError("truncated CBOR")
        major, info = data[i] >> 5, data[i] & 31
        i += 1
        if info < 24:
            arg = info
        elif info in (24, 25, 26, 27):
            n = 1 << (info - 24)
            if i + n > len(data):
                raise ValueError("truncated CBOR")
            arg = int.from_bytes(data[i:i + n], "big")
            i += n
        else:
            raise ValueError("indefinite lengths and simple values are not used")
        if major == 0:
            return arg, i
        if major == 1:
            return -1 - arg, i
        if major in (2, 3):
            if i + arg > len(data):
                raise ValueError("truncated CBOR")
            raw = data[i:i + arg]
            return (raw if major == 2 else raw.decode("utf-8")), i + arg
        if major == 4:
            out = []
            for _ in range(arg):
                v, i = item(i)
                out.append(v)
            return out, i
        if major == 5:
            out = {}
            for _ in range(arg):
                k, i = item(i)
                v, i = item(i)
                if k in out:
                    raise ValueError("duplicate map key")
                out[k] = v
            return out, i
        if major == 6:
            v, i = item(i)
            return Tag(arg, v), i
        raise ValueError("unsupported CBOR major type")

    value, end = item(0)
    if end != len(data):
        raise ValueError("trailing bytes after the CBOR item")
    return value


def cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | info]) + struct.pack(fmt, n)
    raise ValueError("too long")


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 Sig_structure ["Signature1", protected, h'', payload]."""
    context = b"Signature1"
    return (cbor_head(4, 4) + cbor_head(3, len(context)) + context
            + cbor_head(2, len(protected)) + protected + cbor_head(2, 0)
            + cbor_head(2, len(payload)) + payload)


def pss_verifies(key, message: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, message,
                   padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                   hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def es256_verifies(sec1: bytes, message: bytes, signature: bytes) -> bool:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sec1)
    if len(signature) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def check_raw(key, nonce: bytes, evidence: bytes) -> str:
    digest, signature = evidence[:32], evidence[32:]
    if len(signature) * 8 != key.key_size:
        return f"a {len(signature)}-byte signature for a {key.key_size}-bit key"
    pta_nonce = hashlib.sha256(RAW_LABEL + nonce).digest()
    if not pss_verifies(key, pta_nonce + digest, signature):
        return "the attestation PTA's signature of the raw evidence does not verify"
    changed = bytes([digest[0] ^ 1]) + digest[1:]
    if (pss_verifies(key, pta_nonce + changed, signature)
            or pss_verifies(key, hashlib.sha256(RAW_LABEL + nonce + b"x").digest() + digest, signature)
            or pss_verifies(key, nonce + digest, signature)):
        return "the raw evidence's signature also verifies a changed hash or nonce, or the bare nonce"
    return ""


def check_token(key, modulus: bytes, nonce: bytes, ta_hash: bytes, token: bytes) -> str:
    outer = cbor_decode(token)
    if not isinstance(outer, Tag) or outer.tag != 18:
        return "the token is not a tagged COSE_Sign1"
    protected, unprotected, payload, signature = outer.value
    header = cbor_decode(protected)
    if header.get(1) != -7 or set(header) != {1, 4, -65537} or unprotected != {}:
        return f"unexpected COSE headers {sorted(header)} / {unprotected}"
    evidence = header[-65537]
    eph, hash_, pta_sig = evidence[1], evidence[2], evidence[3]
    if set(evidence) != {1, 2, 3}:
        return "unexpected evidence keys"
    if header[4] != hashlib.sha256(eph).digest()[:16]:
        return "the kid is not the ephemeral key's id"
    if not es256_verifies(eph, sig_structure(protected, payload), signature):
        return "the ES256 signature by the ephemeral key does not verify"
    binding = hashlib.sha256(BINDING_LABEL + eph + hashlib.sha256(payload).digest()).digest()
    if not pss_verifies(key, binding + hash_, pta_sig):
        return "the PTA's signature of the token binding does not verify"
    claims = cbor_decode(payload)
    ueid = b"\x01" + hashlib.sha256(modulus.lstrip(b"\x00")).digest()
    components = claims.get(2399, [])
    if claims.get(265) != OPTEE_PROFILE:
        return f"profile {claims.get(265)!r}"
    if claims.get(10) != nonce:
        return "the token's nonce is not the verifier's"
    if claims.get(256) != ueid:
        return "the token's instance id is not 0x01 || SHA-256(modulus)"
    if len(components) != 1 or components[0].get(2) != hash_ or hash_ != ta_hash:
        return "the token's measurement is not the PTA's TA memory hash"
    # A claim changed after the fact (another nonce) breaks the binding: the PTA's signature no
    # longer verifies, even if the ES256 signature were made again.
    other = payload.replace(nonce, bytes([nonce[0] ^ 1]) + nonce[1:], 1)
    other_binding = hashlib.sha256(BINDING_LABEL + eph + hashlib.sha256(other).digest()).digest()
    if other == payload or pss_verifies(key, other_binding + hash_, pta_sig):
        return "the PTA's signature also verifies a token with another nonce"
    return ""


def main() -> int:
    d = Path(sys.argv[1])
    e = int.from_bytes((d / "exponent").read_bytes(), "big")
    modulus = (d / "modulus").read_bytes()
    key = rsa.RSAPublicNumbers(e, int.from_bytes(modulus, "big")).public_key()
    nonce = (d / "nonce").read_bytes()
    evidence = (d / "evidence").read_bytes()
    error = check_raw(key, nonce, evidence)
    if error:
        print(f"error: {error}")
        return 1
    try:
        error = check_token(key, modulus, nonce, evidence[:32], (d / "token").read_bytes())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        error = f"the token does not parse: {exc!r}"
    if error:
        print(f"error: {error}")
        return 1
    print(f"omg-optee: attestation evidence and token verified with Python cryptography "
          f"(RSA-{key.key_size} PSS, ES256, the token's binding, nonce, instance id and TA hash)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
