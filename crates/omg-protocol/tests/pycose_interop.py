"""Independent check of omg attestation tokens with pycose (pip install pycose "cbor2<6").

    OMG_WRITE_TOKEN_SAMPLE=/tmp/s cargo test -p omg-protocol --test token_interop
    python3 tests/pycose_interop.py /tmp/s          # verifies token.cbor, writes foreign_token.cbor
    OMG_VERIFY_FOREIGN_TOKEN=/tmp/s cargo test -p omg-protocol --test token_interop
"""
import sys

import cbor2
from pycose.algorithms import Es256
from pycose.headers import KID, Algorithm
from pycose.keys import EC2Key
from pycose.keys.curves import P256
from pycose.messages import Sign1Message

d = sys.argv[1]
tok = open(f"{d}/token.cbor", "rb").read()
pub = open(f"{d}/device_pub.sec1", "rb").read()
priv = open(f"{d}/device_priv.p256", "rb").read()
key = EC2Key(crv=P256, x=pub[1:33], y=pub[33:65])

msg = Sign1Message.decode(tok)
msg.key = key
assert msg.verify_signature(), "pycose: signature does not verify"
claims = cbor2.loads(msg.payload)
assert len(claims[10]) == 32  # nonce
assert claims[256][0] == 1 and len(claims[256]) == 33  # UEID
assert claims[265] == "tag:omg.example.invalid,2026:eat-psa-v1"  # profile
assert len(claims[-65537]) == 32  # enclave HPKE key hash
print("pycose verified omg token; claims:", sorted(claims, key=lambda k: (k < 0, abs(k))))

bad = bytearray(tok)
bad[-5] ^= 1
m2 = Sign1Message.decode(bytes(bad))
m2.key = key
try:
    ok = m2.verify_signature()
except Exception:
    ok = False
assert not ok, "tampered token verified"

# A token signed by pycose (claims in another order, kid unprotected) for Token::verify_foreign.
m3 = Sign1Message(phdr={Algorithm: Es256}, uhdr={KID: b"dev"},
                  payload=cbor2.dumps(dict(reversed(list(claims.items())))))
m3.key = EC2Key(crv=P256, x=pub[1:33], y=pub[33:65], d=priv)
open(f"{d}/foreign_token.cbor", "wb").write(m3.encode(tag=True))
print("wrote", f"{d}/foreign_token.cbor")
