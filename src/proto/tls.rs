//! TLS records and handshake messages.
