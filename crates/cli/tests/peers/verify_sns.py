"""Verifies SNS message signatures the way AWS documents it, independently of orderflow.

Reads a JSON array of SNS messages (as POSTed to an HTTP endpoint) on stdin and prints a
JSON array with, for each, {"MessageId", "valid", "error"}. The steps: pick the hash from
SignatureVersion (1: SHA1, 2: SHA256); fetch the X.509 certificate at SigningCertURL; take
its public key; build the string to sign from the fields of the message's Type, in byte
order, each as "Name\\nvalue\\n" (Subject only when present); base64-decode Signature and
verify it (RSA PKCS#1 v1.5) against that string.

One deliberate difference from a verifier of AWS's own messages: the certificate is fetched
over HTTP from 127.0.0.1 (orderflow's SigningCertURL) instead of insisting on HTTPS and an
sns.<region>.amazonaws.com host.
"""

import base64
import json
import sys
import urllib.parse
import urllib.request

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

NOTIFICATION_KEYS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONFIRMATION_KEYS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]

_certificates = {}


def certificate(url):
    parsed = urllib.parse.urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost") or not parsed.path.endswith(".pem"):
        raise ValueError(f"refusing to fetch a certificate from {url}")
    if url not in _certificates:
        with urllib.request.urlopen(url, timeout=10) as response:
            _certificates[url] = x509.load_pem_x509_certificate(response.read())
    return _certificates[url]


def string_to_sign(message):
    kind = message.get("Type")
    if kind == "Notification":
        keys = NOTIFICATION_KEYS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        keys = CONFIRMATION_KEYS
    else:
        raise ValueError(f"unknown Type {kind!r}")
    out = ""
    for key in sorted(keys):
        if key in message and message[key] is not None:
            out += f"{key}\n{message[key]}\n"
    return out.encode("utf-8")


def verify(message):
    version = message.get("SignatureVersion")
    if version == "1":
        digest = hashes.SHA1()
    elif version == "2":
        digest = hashes.SHA256()
    else:
        raise ValueError(f"unknown SignatureVersion {version!r}")
    public_key = certificate(message["SigningCertURL"]).public_key()
    signature = base64.b64decode(message["Signature"])
    public_key.verify(signature, string_to_sign(message), padding.PKCS1v15(), digest)


def main():
    results = []
    for message in json.load(sys.stdin):
        try:
            verify(message)
            results.append({"MessageId": message.get("MessageId"), "valid": True, "error": None})
        except InvalidSignature:
            results.append({"MessageId": message.get("MessageId"), "valid": False, "error": "InvalidSignature"})
        except Exception as e:  # noqa: BLE001 - report every failure to the test
            results.append({"MessageId": message.get("MessageId"), "valid": False, "error": repr(e)})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
