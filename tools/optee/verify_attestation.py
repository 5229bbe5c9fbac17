#!/usr/bin/python3
"""Checks the evidence the omg TA got from OP-TEE's attestation PTA, independently of OP-TEE
and of the Rust code: the files of DIR (written in the emulated machine by optee/host) are the
PTA's RSA public key (`exponent`, `modulus`, big-endian), the verifier's `nonce` and the
`evidence`: the SHA-256 of the TA's memory followed by an RSASSA-PSS signature (SHA-256,
MGF1-SHA-256, 32-byte salt) of nonce | hash. Exits 0 when the signature verifies and a changed
hash or nonce does not.

    verify_attestation.py DIR
"""
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def verifies(key, message: bytes, signature: bytes) -> bool:
    try:
        key.verify(
            signature,
            message,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
        return True
    except InvalidSignature:
        return False


def main() -> int:
    d = Path(sys.argv[1])
    e = int.from_bytes((d / "exponent").read_bytes(), "big")
    n = int.from_bytes((d / "modulus").read_bytes(), "big")
    nonce = (d / "nonce").read_bytes()
    evidence = (d / "evidence").read_bytes()
    key = rsa.RSAPublicNumbers(e, n).public_key()
    digest, signature = evidence[:32], evidence[32:]
    if len(signature) * 8 != key.key_size:
        print(f"error: a {len(signature)}-byte signature for a {key.key_size}-bit key")
        return 1
    if not verifies(key, nonce + digest, signature):
        print("error: the attestation PTA's signature does not verify")
        return 1
    changed = bytes([digest[0] ^ 1]) + digest[1:]
    if verifies(key, nonce + changed, signature) or verifies(key, nonce + b"x" + digest, signature):
        print("error: the signature also verifies a changed hash or nonce")
        return 1
    print(f"omg-optee: attestation evidence verified with Python cryptography (RSA-{key.key_size}, PSS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
