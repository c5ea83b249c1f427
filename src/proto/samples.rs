//! Test samples, one or more per protocol and role. Captured ones come from real programs
//! talking over loopback on a development machine (curl 7.88, OpenSSL 3.0, OpenSSH 9.2
//! client, Python 3.11 smtplib / ftplib / poplib / imaplib / http.server, curl's SOCKS
//! support) and were recorded by a plain socket listener; the rest are written by hand from
//! the RFC / specification named beside them. Nothing here comes from third-party captures.

use super::AppProto;
use crate::flow::Dir;

pub(crate) struct Sample {
    pub name: &'static str,
    pub proto: AppProto,
    /// The direction this form normally travels in.
    pub dir: Dir,
    pub bytes: Vec<u8>,
}

pub(crate) fn hex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("test hex"))
        .collect()
}

/// `openssl s_server` (OpenSSL 3) answering that ClientHello: ServerHello record + ChangeCipherSpec.
pub(crate) const TLS13_SERVER_HELLO: &[&str] = &[
    "160303007a0200007603039e15991d504da0ca0e6c95ba1a871fbd12b080eaaaf8e9e0b569f2315a3c0f7420cbc9a77f",
    "75cd8c5162cca616fd152751e5dbf8731f6f519dfcf135779fd20b97130200002e002b0002030400330024001d0020c6",
    "07ea4cd498ede85b8a8df7ce53b11fad1c14280cce9ce41455ecf045d9930f140303000101",
];

/// `openssl s_server -tls1_2`: the ServerHello record.
pub(crate) const TLS12_SERVER_HELLO: &[&str] = &[
    "16030300410200003d0303821f918eecf79afd0c21000f862b5761845b5b52f5cbc4c1e8ac4c7bca61343300c02c0000",
    "15ff01000100000b0004030001020023000000170000",
];

/// `curl https://127.0.0.1:port/` (curl 7.88, OpenSSL 3): the whole first flight.
pub(crate) const TLS_CLIENT_HELLO_CURL: &[&str] = &[
    "1603010200010001fc03037b5981c771f1b612027fe73f16975f7f398616025159480e37c628ace673df2d20cc377685",
    "69c5b1aac777ad75e3e1772579fbd4c12f7fc189341b986369edefa9003e130213031301c02cc030009fcca9cca8ccaa",
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000175",
    "000b000403000102000a00160014001d0017001e00190018010001010102010301040010000e000c0268320868747470",
    "2f312e31001600000017000000310000000d002a0028040305030603080708080809080a080b08040805080604010501",
    "0601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d0020f940fe2487",
    "4951c491e4dae0abc67ba7d951a076018388bf1469366e3a91a35b001500c60000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000000000000000000000000000000000",
];

/// `openssl s_client -servername example.com`: the whole first flight.
pub(crate) const TLS_CLIENT_HELLO_OPENSSL: &[&str] = &[
    "1603010138010001340303c385d1daf318060258a2e28ffb80eb4cc8e3bf430b5b1ec8848c2b62f622f03020cbc9a77f",
    "75cd8c5162cca616fd152751e5dbf8731f6f519dfcf135779fd20b97003e130213031301c02cc030009fcca9cca8ccaa",
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000ad",
    "00000010000e00000b6578616d706c652e636f6d000b000403000102000a00160014001d0017001e0019001801000101",
    "010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b0804080508060401",
    "05010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d0020505652",
    "b82b5a6ab0d29ebd3a90f196192382d5109226fb0220855f95e0cf5030",
];

/// DNS query for `name` (type A, class IN, with an EDNS OPT record), with the TCP length.
pub(crate) fn dns_query(name: &str) -> Vec<u8> {
    let mut m = vec![0x1a, 0x2b, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1];
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    // OPT: root name, type 41, UDP size 1232, ext-rcode/version/flags 0, rdlen 0
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    let mut out = (m.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&m);
    out
}

/// The matching response with one A record (name compressed to the question).
pub(crate) fn dns_response(name: &str) -> Vec<u8> {
    let q = dns_query(name);
    let mut m = q[2..].to_vec();
    m[2] = 0x81; // QR, RD
    m[3] = 0xa0; // RA, AD
    m[7] = 1; // ANCOUNT
    let opt_at = m.len() - 11;
    let opt = m.split_off(opt_at);
    m.extend_from_slice(&[
        0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 215, 14,
    ]);
    m.extend_from_slice(&opt);
    let mut out = (m.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&m);
    out
}

const SID_C: [u8; 8] = [0x5a, 0x11, 0x9c, 0x03, 0xe7, 0x42, 0x0b, 0xd8];
const SID_S: [u8; 8] = [0x71, 0xc2, 0x08, 0x9e, 0x3d, 0x55, 0xaf, 0x16];

fn framed(pkt: Vec<u8>) -> Vec<u8> {
    let mut out = (pkt.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&pkt);
    out
}

/// OpenVPN P_CONTROL_HARD_RESET_CLIENT_V2 without tls-auth (opcode 7, key 0).
pub(crate) fn openvpn_client_reset_plain() -> Vec<u8> {
    let mut p = vec![7 << 3];
    p.extend_from_slice(&SID_C);
    p.push(0); // no acks
    p.extend_from_slice(&[0, 0, 0, 0]); // message packet id
    framed(p)
}

/// The same with tls-auth (HMAC-SHA1, replay packet id 1, a 2023 timestamp).
pub(crate) fn openvpn_client_reset_tls_auth() -> Vec<u8> {
    let mut p = vec![7 << 3];
    p.extend_from_slice(&SID_C);
    p.extend((0..20u8).map(|i| i.wrapping_mul(53) ^ 0xa5));
    p.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x4f, 0x2a, 0x10]);
    p.push(0);
    p.extend_from_slice(&[0, 0, 0, 0]);
    framed(p)
}

/// P_CONTROL_HARD_RESET_CLIENT_V3 with tls-crypt-v2: packet id and time, 32-byte tag,
/// encrypted remainder and the wrapped client key.
pub(crate) fn openvpn_client_reset_tls_crypt_v3() -> Vec<u8> {
    let mut p = vec![10 << 3];
    p.extend_from_slice(&SID_C);
    p.extend_from_slice(&[0, 0, 0, 1, 0x66, 0x10, 0x00, 0x01]);
    p.extend((0..32u8 + 5 + 120).map(|i| i.wrapping_mul(97).wrapping_add(13)));
    framed(p)
}

/// P_CONTROL_HARD_RESET_SERVER_V2 acknowledging the client's reset.
pub(crate) fn openvpn_server_reset_plain() -> Vec<u8> {
    let mut p = vec![8 << 3];
    p.extend_from_slice(&SID_S);
    p.push(1);
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&SID_C);
    p.extend_from_slice(&[0, 0, 0, 0]);
    framed(p)
}

/// SSLv2-format CLIENT-HELLO announcing TLS 1.0 (RFC 6101 E.2 / RFC 5246 E.2): 7 cipher
/// specs, no session id, a 16-byte challenge.
pub(crate) fn sslv2_client_hello() -> Vec<u8> {
    let mut v = vec![
        0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
    ];
    for spec in [
        [0, 0, 0x39],
        [0, 0, 0x38],
        [0, 0, 0x35],
        [0, 0, 0x16],
        [0, 0, 0x13],
        [0, 0, 0x0a],
        [0x07, 0x00, 0xc0],
    ] {
        v.extend_from_slice(&spec);
    }
    v.extend((0..16u8).map(|i| i.wrapping_mul(29) ^ 0x3c));
    v
}

pub(crate) fn all() -> Vec<Sample> {
    use AppProto::*;
    use Dir::{ToClient as Tc, ToServer as Ts};
    let s = |name, proto, dir, bytes: &[u8]| Sample {
        name,
        proto,
        dir,
        bytes: bytes.to_vec(),
    };
    let o = |name, proto, dir, bytes: Vec<u8>| Sample {
        name,
        proto,
        dir,
        bytes,
    };
    let mut kex = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6\r\n".to_vec();
    kex.extend_from_slice(&[0, 0, 5, 0xdc, 6, 20, 0x8c, 0x1f, 0x44, 0x90]);
    vec![
        // TLS (RFC 8446 / 5246)
        o("tls client hello (curl)", Tls, Ts, hex(TLS_CLIENT_HELLO_CURL)),
        o("tls client hello (openssl)", Tls, Ts, hex(TLS_CLIENT_HELLO_OPENSSL)),
        o("tls 1.3 server hello (openssl)", Tls, Tc, hex(TLS13_SERVER_HELLO)),
        o("tls 1.2 server hello (openssl)", Tls, Tc, hex(TLS12_SERVER_HELLO)),
        o("sslv2 client hello", Tls, Ts, sslv2_client_hello()),
        // HTTP/1.x (RFC 9112)
        s("http request (curl)", Http, Ts, b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:18001\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"),
        s("http response (python http.server)", Http, Tc, b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.7\r\nDate: Mon, 23 Nov 2026 06:02:50 GMT\r\nContent-type: text/html\r\nContent-Length: 6\r\nLast-Modified: Mon, 23 Nov 2026 06:02:48 GMT\r\n\r\nhello\n"),
        s("http post", Http, Ts, b"POST /api/v1/items HTTP/1.1\r\nHost: example.org\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"),
        s("http unknown method", Http, Ts, b"NOTMETHOD /WANIPConnection HTTP/1.1\r\nHOST: 192.168.0.1:80\r\n\r\n"),
        s("http missing version", Http, Ts, b"GET /gen.php?generate=1&hwid=2\r\nHost: 10.0.0.1\r\nUser-Agent:Mozilla/5.0\r\n\r\n"),
        // SSH (RFC 4253 4.2)
        s("ssh client banner (openssh)", Ssh, Ts, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6\r\n"),
        o("ssh server banner + kexinit", Ssh, Tc, kex),
        s("ssh server banner (dropbear)", Ssh, Tc, b"SSH-2.0-dropbear_2022.83\r\n"),
        // SMTP (RFC 5321)
        s("smtp greeting", Smtp, Tc, b"220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n"),
        s("smtp multi-line greeting", Smtp, Tc, b"220-mx.example.net ESMTP Exim 4.96 Mon, 23 Nov 2026\r\n220 No UCE\r\n"),
        s("smtp ehlo (python smtplib)", Smtp, Ts, b"ehlo [127.0.0.1]\r\n"),
        s("smtp EHLO", Smtp, Ts, b"EHLO client.example.org\r\n"),
        // FTP (RFC 959, RFC 4217)
        s("ftp greeting (vsftpd)", Ftp, Tc, b"220 (vsFTPd 3.0.5)\r\n"),
        s("ftp multi-line greeting (filezilla)", Ftp, Tc, b"220-FileZilla Server 1.8.0\r\n220 Please visit https://filezilla-project.org/\r\n"),
        s("ftp AUTH TLS", Ftp, Ts, b"AUTH TLS\r\n"),
        s("ftp FEAT", Ftp, Ts, b"FEAT\r\n"),
        // POP3 (RFC 1939, 2449, 2595)
        s("pop3 greeting", Pop3, Tc, b"+OK Dovecot (Ubuntu) ready.\r\n"),
        s("pop3 CAPA (python poplib)", Pop3, Ts, b"CAPA\r\n"),
        s("pop3 STLS", Pop3, Ts, b"STLS\r\n"),
        s("pop3 APOP", Pop3, Ts, b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"),
        // IMAP (RFC 9051 / 3501)
        s("imap greeting", Imap, Tc, b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot (Ubuntu) ready.\r\n"),
        s("imap preauth greeting", Imap, Tc, b"* PREAUTH IMAP4rev1 server logged in as Smith\r\n"),
        s("imap CAPABILITY (python imaplib)", Imap, Ts, b"MABB0 CAPABILITY\r\n"),
        s("imap LOGIN", Imap, Ts, b"a001 LOGIN SMITH SESAME\r\n"),
        // RDP (MS-RDPBCGR 4.1.1 / 4.1.2)
        o("rdp connection request", Rdp, Ts, {
            let mut v = vec![0x03, 0x00, 0x00, 0x2c, 0x27, 0xe0, 0, 0, 0, 0, 0];
            v.extend_from_slice(b"Cookie: mstshash=eltons\r\n");
            v.extend_from_slice(&[0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00]);
            v
        }),
        s("rdp connection confirm", Rdp, Tc, &[0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34, 0x00, 0x02, 0x00, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00]),
        // DNS over TCP (RFC 1035 4.2.2)
        o("dns query", Dns, Ts, dns_query("www.example.com")),
        o("dns response", Dns, Tc, dns_response("www.example.com")),
        // SOCKS4 / 4a
        s("socks4 connect (curl)", Socks4, Ts, &[0x04, 0x01, 0x1f, 0x90, 0x7f, 0x00, 0x00, 0x02, 0x00]),
        s("socks4a connect (curl)", Socks4, Ts, b"\x04\x01\x00P\x00\x00\x00\x01\x00example.com\x00"),
        s("socks4 reply", Socks4, Tc, &[0x00, 0x5a, 0, 0, 0, 0, 0, 0]),
        // SOCKS5 (RFC 1928 / 1929)
        s("socks5 greeting (curl)", Socks5, Ts, &[0x05, 0x02, 0x00, 0x01]),
        s("socks5 greeting + request", Socks5, Ts, b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x00\x50"),
        s("socks5 choice + reply", Socks5, Tc, &[0x05, 0x00, 0x05, 0x00, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0x1f, 0x90]),
        s("socks5 user/pass + reply", Socks5, Tc, &[0x05, 0x02, 0x01, 0x00, 0x05, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01, 0x04, 0x38]),
        // OpenVPN over TCP
        o("openvpn client reset", OpenVpn, Ts, openvpn_client_reset_plain()),
        o("openvpn client reset tls-auth", OpenVpn, Ts, openvpn_client_reset_tls_auth()),
        o("openvpn client reset v3 tls-crypt-v2", OpenVpn, Ts, openvpn_client_reset_tls_crypt_v3()),
        o("openvpn server reset", OpenVpn, Tc, openvpn_server_reset_plain()),
    ]
}
