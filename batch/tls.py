"""The certificates paybatch trusts for https: the operator's bundle, else the OS trust store.

`SSL_CERT_FILE` and `SSL_CERT_DIR`, when set, name the CAs to trust (OpenSSL's meaning, and
httpx's). Otherwise the operating system's own trust store through truststore, so a
corporate TLS-inspection CA installed there is trusted as every other program on the
machine trusts it; certifi's bundle where truststore cannot be imported.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping


def ssl_context(environ: Mapping[str, str] = os.environ) -> ssl.SSLContext:
    """A verifying client context: hostname checked, certificate required."""
    cafile = environ.get("SSL_CERT_FILE") or None
    capath = environ.get("SSL_CERT_DIR") or None
    if cafile or capath:
        # httpx reads these itself only when it builds the context; we build it.
        return ssl.create_default_context(cafile=cafile, capath=capath)
    try:
        import truststore
    except ImportError:  # an interpreter without the chain APIs truststore needs
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
