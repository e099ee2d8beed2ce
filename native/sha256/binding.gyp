{
  "targets": [{
    "target_name": "sha256",
    "sources": ["sha256.c"],
    "defines": ["OPENSSL_SUPPRESS_DEPRECATED", "NAPI_VERSION=8"]
  }]
}
