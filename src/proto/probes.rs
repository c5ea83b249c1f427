//! Content probes for the protocols that do not have a parser module of their own: TLS (the
//! cheap record/hello check; parsing lives in `tls.rs`), the mail and file-transfer text
//! protocols (SMTP, POP3, IMAP, FTP), and the binary openers (RDP, DNS over TCP, SOCKS4/5,
//! OpenVPN over TCP). HTTP and SSH probes live beside their parsers.
//!
//! Every probe reads only the bytes it is given, never indexes past them, and answers
//! [`Step::NeedMore`] only while the structure it checks is still arriving.

use super::{Evidence, Role, Step};

/// Longest first line a text probe waits for. SMTP allows 512 bytes per reply line
/// (RFC 5321 4.5.3.1.5); FTP, POP3 and IMAP greetings are shorter in practice.
pub(crate) const LINE_CAP: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Small text helpers shared with http.rs and ssh.rs.

/// The first line of `data`: its bytes without CR LF, and the length including the terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Complete {
        text: &'a [u8],
        len: usize,
    },
    /// No LF yet and still under the cap.
    Partial,
    /// No LF within `cap` bytes.
    TooLong,
}

pub(crate) fn first_line(data: &[u8], cap: usize) -> Line<'_> {
    let window = data.get(..cap.min(data.len())).unwrap_or(data);
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let text = window.get(..lf).unwrap_or(&[]);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            Line::Complete { text, len: lf + 1 }
        }
        None if data.len() >= cap => Line::TooLong,
        None => Line::Partial,
    }
}

/// How `data` relates to the start of `word`, ASCII case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    /// `data` starts with `word`.
    Yes,
    /// `data` is shorter than `word` and is its beginning.
    Maybe,
    No,
}

pub(crate) fn prefix_ci(data: &[u8], word: &[u8]) -> Prefix {
    let n = data.len().min(word.len());
    let (Some(a), Some(b)) = (data.get(..n), word.get(..n)) else {
        return Prefix::No;
    };
    if !a.eq_ignore_ascii_case(b) {
        Prefix::No
    } else if data.len() >= word.len() {
        Prefix::Yes
    } else {
        Prefix::Maybe
    }
}

pub(crate) fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay.len() >= needle.len()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be24(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(3)?)?;
    Some(u32::from_be_bytes([0, b[0], b[1], b[2]]))
}

fn is_printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// Which client command opens a text-protocol line, if any, from `table`.
/// Returns the confidence of the command and whether the data already reached its end.
fn client_command(data: &[u8], table: &[(&[u8], u8)]) -> Step {
    let mut possible = false;
    for &(word, confidence) in table {
        match prefix_ci(data, word) {
            Prefix::Yes => {
                return match first_line(data, LINE_CAP) {
                    Line::Complete { text, .. } if text.iter().all(|&b| is_printable(b)) => {
                        Step::Match(confidence)
                    }
                    Line::Complete { .. } | Line::TooLong => Step::NoMatch,
                    Line::Partial if data.iter().all(|&b| is_printable(b) || b == b'\r') => {
                        Step::NeedMore(confidence / 2)
                    }
                    Line::Partial => Step::NoMatch,
                }
            }
            Prefix::Maybe => possible = true,
            Prefix::No => {}
        }
    }
    if possible {
        Step::NeedMore(0)
    } else {
        Step::NoMatch
    }
}

// ---------------------------------------------------------------------------------------------
// TLS / SSL.

/// Largest TLSCiphertext fragment (RFC 8446 5.2: 2^14 + 256; TLS 1.2 allowed 2^14 + 2048).
const TLS_MAX_RECORD: u16 = 16384 + 2048;

pub(crate) fn tls(data: &[u8]) -> Evidence {
    match data.first() {
        None => Evidence::need(0, Role::Either),
        Some(0x16) => tls_handshake(data),
        Some(0x14 | 0x15 | 0x17) => tls_records(data),
        Some(&b) if b & 0x80 != 0 => sslv2(data),
        Some(_) => Evidence::no(),
    }
}

/// Record header: version 0x0300..=0x0304 and a sane length. `None` while incomplete.
fn tls_record_header_ok(data: &[u8]) -> Option<bool> {
    let major = *data.get(1)?;
    if major != 0x03 {
        return Some(false);
    }
    let minor = *data.get(2)?;
    if minor > 0x04 {
        return Some(false);
    }
    let len = be16(data, 3)?;
    Some(len > 0 && len <= TLS_MAX_RECORD)
}

fn tls_handshake(data: &[u8]) -> Evidence {
    match tls_record_header_ok(data) {
        None => {
            // "\x16\x03" is already a strong hint; one byte alone is not.
            let t = if data.len() >= 2 { 40 } else { 10 };
            return Evidence::need(t, Role::Either);
        }
        Some(false) => {
            // A sound header but for a length beyond any TLS record, announcing a hello: the
            // bytes claim TLS with a frame no stack writes (up to 64 KiB that will never come).
            // Let the TLS parser count it and the handshake check judge it.
            let oversized = be16(data, 3).is_some_and(|l| l > TLS_MAX_RECORD)
                && data.get(1) == Some(&0x03)
                && data.get(2).is_some_and(|&m| m <= 0x04);
            return match data.get(5) {
                Some(1) if oversized => fake_hello(Role::Client),
                Some(2) if oversized => fake_hello(Role::Server),
                _ => Evidence::no(),
            };
        }
        Some(true) => {}
    }
    let record_len = usize::from(be16(data, 3).unwrap_or(0));
    let Some(&msg_type) = data.get(5) else {
        return Evidence::need(50, Role::Either);
    };
    match msg_type {
        1 => tls_hello(data, record_len, Role::Client),
        2 => tls_hello(data, record_len, Role::Server),
        // A handshake record that is not a hello: a capture that starts mid-handshake, or
        // an encrypted Finished. Judge it as a record sequence.
        _ => tls_records(data),
    }
}

/// ClientHello / ServerHello body check (RFC 8446 4.1.2-3, RFC 5246 7.4.1).
fn tls_hello(data: &[u8], record_len: usize, role: Role) -> Evidence {
    const BODY: usize = 9; // record header 5 + handshake header 4
    let record_end = 5 + record_len;
    let Some(hs_len) = be24(data, 6) else {
        return Evidence::need(70, role);
    };
    let hs_len = hs_len as usize;
    // version 2 + random 32 + session id length 1 + at least a cipher suite and compression.
    if hs_len < 2 + 32 + 1 + 2 + 1 {
        return fake_hello(role);
    }
    // The hello body may continue in later records (a fragmented ClientHello), so bytes past
    // the first record are not read: only what this record holds is verified.
    let avail = data.len().min(record_end);
    let body_end = (BODY + hs_len).min(record_end);
    let Some(version) = be16(data, BODY) else {
        return need_or_short(avail, record_end, 75, role);
    };
    if !(0x0300..=0x0304).contains(&version) {
        return fake_hello(role);
    }
    let sid_at = BODY + 2 + 32;
    let Some(&sid_len) = data.get(sid_at).filter(|_| sid_at < record_end) else {
        return need_or_short(avail, record_end, 80, role);
    };
    if sid_len > 32 {
        return fake_hello(role);
    }
    let after_sid = sid_at + 1 + usize::from(sid_len);
    match role {
        Role::Client => {
            let Some(cs_len) = be16(data, after_sid).filter(|_| after_sid + 2 <= record_end) else {
                return need_or_short(avail, record_end, 85, role);
            };
            if cs_len < 2 || cs_len % 2 != 0 {
                return fake_hello(role);
            }
            let comp_at = after_sid + 2 + usize::from(cs_len);
            if comp_at >= body_end {
                // Cipher list runs past this record: a fragmented hello.
                return if data.len() >= record_end {
                    Evidence::matched(88, role)
                } else {
                    Evidence::need(85, role)
                };
            }
            let Some(&comp_len) = data.get(comp_at) else {
                return Evidence::need(88, role);
            };
            if comp_len == 0 {
                // Malformed (the null method is mandatory), yet every field before it
                // fitted the hello layout: TLS-framed, with less confidence.
                return Evidence::matched(80, role);
            }
            let comp_end = comp_at + 1 + usize::from(comp_len);
            match data.get(comp_at + 1..comp_end) {
                // Every TLS client offers the null method (RFC 5246 7.4.1.2).
                Some(m) if m.contains(&0) => Evidence::matched(98, role),
                Some(_) => Evidence::matched(80, role),
                None if comp_end > record_end && data.len() >= record_end => {
                    Evidence::matched(88, role)
                }
                None => Evidence::need(90, role),
            }
        }
        _ => {
            // cipher suite 2 + compression method 1
            let Some(&comp) = data
                .get(after_sid + 2)
                .filter(|_| after_sid + 3 <= record_end)
            else {
                return need_or_short(avail, record_end, 85, role);
            };
            if comp > 1 {
                // Only null (0) and DEFLATE (1) were ever assigned for use.
                return fake_hello(role);
            }
            Evidence::matched(97, role)
        }
    }
}

/// Confidence of bytes framed as a TLS handshake record carrying a hello whose body breaks the
/// hello layout. Nothing else starts with a valid record header and a hello type, so the bytes
/// *claim* TLS; whether the claim holds is for the TLS parser and the handshake checks to judge
/// (fake TLS is T1001.003 itself). Kept below the usual ProtocolMatchConfidence threshold so a
/// broken hello never counts as confident TLS for port checks.
pub(crate) const FAKE_HELLO_CONFIDENCE: u8 = 55;

fn fake_hello(role: Role) -> Evidence {
    Evidence::matched(FAKE_HELLO_CONFIDENCE, role)
}

/// NeedMore while the record is still arriving; a hello cut short by its own record is
/// malformed but was still TLS-framed.
fn need_or_short(avail: usize, record_end: usize, confidence: u8, role: Role) -> Evidence {
    if avail >= record_end {
        Evidence::matched(confidence.saturating_sub(20), role)
    } else {
        Evidence::need(confidence, role)
    }
}

/// A run of TLS records without a hello (a flow picked up mid-stream, or a hello that was
/// lost): each header must be sane and the next header must start where the record ends.
fn tls_records(data: &[u8]) -> Evidence {
    let mut at = 0usize;
    let mut records = 0u8;
    let mut version = None;
    while records < 4 {
        let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) else {
            break;
        };
        if !matches!(rest[0], 0x14..=0x17) {
            return Evidence::no();
        }
        match tls_record_header_ok(rest) {
            None => break,
            Some(false) => return Evidence::no(),
            Some(true) => {}
        }
        let v = be16(rest, 1);
        if version.is_some() && version != v {
            return Evidence::no();
        }
        version = v;
        let len = usize::from(be16(rest, 3).unwrap_or(0));
        if rest[0] == 0x14 && (len != 1 || rest.get(5).is_some_and(|&b| b != 1)) {
            // ChangeCipherSpec is always the single byte 1.
            return Evidence::no();
        }
        records += 1;
        at += 5 + len;
    }
    match records {
        0 => Evidence::need(if data.len() >= 3 { 30 } else { 5 }, Role::Either),
        1 if data.len() <= at => {
            if data.len() == at {
                Evidence::matched(45, Role::Either)
            } else {
                Evidence::need(40, Role::Either)
            }
        }
        1 => Evidence::need(45, Role::Either),
        2 => Evidence::matched(65, Role::Either),
        _ => Evidence::matched(75, Role::Either),
    }
}

/// SSLv2-format hellos (RFC 6101 appendix E.2; the 2-byte-header form every compatible
/// client used).
fn sslv2(data: &[u8]) -> Evidence {
    let Some(&lo) = data.get(1) else {
        return Evidence::need(0, Role::Either);
    };
    let hi = data.first().copied().unwrap_or(0) & 0x7f;
    let rec_len = usize::from(u16::from_be_bytes([hi, lo]));
    let Some(&msg) = data.get(2) else {
        return Evidence::need(0, Role::Either);
    };
    match msg {
        1 => {
            let Some(version) = be16(data, 3) else {
                return Evidence::need(20, Role::Client);
            };
            if version != 0x0002 && !(0x0300..=0x0303).contains(&version) {
                return Evidence::no();
            }
            let (Some(cs), Some(sid), Some(ch)) = (be16(data, 5), be16(data, 7), be16(data, 9))
            else {
                return Evidence::need(40, Role::Client);
            };
            let ok = cs > 0
                && cs % 3 == 0
                && (sid == 0 || sid == 16)
                && (16..=32).contains(&ch)
                && rec_len == 9 + usize::from(cs) + usize::from(sid) + usize::from(ch);
            if ok {
                Evidence::matched(90, Role::Client)
            } else {
                Evidence::no()
            }
        }
        4 => {
            // session-id-hit, certificate type, version, cert length, cipher specs, conn id
            let (Some(&hit), Some(&cert_type), Some(version)) =
                (data.get(3), data.get(4), be16(data, 5))
            else {
                return Evidence::need(20, Role::Server);
            };
            let (Some(cert), Some(cs), Some(cid)) = (be16(data, 7), be16(data, 9), be16(data, 11))
            else {
                return Evidence::need(40, Role::Server);
            };
            let ok = hit <= 1
                && cert_type == 1
                && version == 0x0002
                && cs % 3 == 0
                && (16..=32).contains(&cid)
                && rec_len == 11 + usize::from(cert) + usize::from(cs) + usize::from(cid);
            if ok {
                Evidence::matched(85, Role::Server)
            } else {
                Evidence::no()
            }
        }
        _ => Evidence::no(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reply-code greetings shared by SMTP and FTP ("220 ...").

/// What a numeric greeting says about SMTP and FTP. Both are evaluated from one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Greeting {
    smtp: Step,
    ftp: Step,
}

const SMTP_WORDS: &[&[u8]] = &[b"SMTP", b"Postfix", b"Sendmail", b"Exim", b"qmail"];
/// Weak: mail hosts are often called "mail.*", but so can an FTP server be.
const SMTP_WEAK_WORDS: &[&[u8]] = &[b"MAIL"];
const FTP_WORDS: &[&[u8]] = &[b"FTP", b"FileZilla"];
/// Lines a greeting may span before it is judged on what was seen.
const GREETING_LINES: usize = 16;

fn greeting(data: &[u8]) -> Greeting {
    const NO: Greeting = Greeting {
        smtp: Step::NoMatch,
        ftp: Step::NoMatch,
    };
    let code = data.get(..3.min(data.len())).unwrap_or(&[]);
    if !code.iter().all(u8::is_ascii_digit) {
        return NO;
    }
    if code.len() < 3 {
        return if b"220".starts_with(code) || b"554".starts_with(code) {
            Greeting {
                smtp: Step::NeedMore(0),
                ftp: Step::NeedMore(0),
            }
        } else {
            NO
        };
    }
    let code: [u8; 3] = [code[0], code[1], code[2]];
    // 554 is SMTP's "no service here" greeting (RFC 5321 3.1); 421 either protocol's
    // "closing"; 220 is "ready" in both.
    if !matches!(&code, b"220" | b"554" | b"421") {
        return NO;
    }

    let mut at = 0usize;
    let mut lines = 0usize;
    let mut done = false;
    let mut smtp_word = false;
    let mut smtp_weak = false;
    let mut ftp_word = false;
    let mut unprefixed = false;
    let mut bad = false;
    while lines < GREETING_LINES {
        let rest = data.get(at..).unwrap_or(&[]);
        let (text, len) = match first_line(rest, LINE_CAP) {
            Line::Complete { text, len } => (text, len),
            Line::TooLong => {
                bad = true;
                break;
            }
            Line::Partial => {
                // Judge the words seen so far, to say how promising the wait is.
                smtp_word |= SMTP_WORDS.iter().any(|w| contains_ci(rest, w));
                smtp_weak |= SMTP_WEAK_WORDS.iter().any(|w| contains_ci(rest, w));
                ftp_word |= FTP_WORDS.iter().any(|w| contains_ci(rest, w));
                if let Some(&sep) = rest.get(3) {
                    if lines == 0 && sep != b' ' && sep != b'-' {
                        bad = true;
                    }
                }
                break;
            }
        };
        if !text
            .iter()
            .all(|&b| is_printable(b) || b == b'\t' || b >= 0x80)
        {
            bad = true;
            break;
        }
        smtp_word |= SMTP_WORDS.iter().any(|w| contains_ci(text, w));
        smtp_weak |= SMTP_WEAK_WORDS.iter().any(|w| contains_ci(text, w));
        ftp_word |= FTP_WORDS.iter().any(|w| contains_ci(text, w));
        lines += 1;
        at += len;
        if text.get(..3) == Some(&code[..]) {
            match text.get(3) {
                None | Some(b' ') => {
                    done = true;
                    break;
                }
                Some(b'-') => {}
                Some(_) if lines == 1 => {
                    bad = true;
                    break;
                }
                // FTP lets the lines inside a multi-line reply read anything (RFC 959 4.2).
                Some(_) => unprefixed = true,
            }
        } else if lines == 1 {
            bad = true;
            break;
        } else {
            unprefixed = true;
        }
    }
    if bad {
        return NO;
    }
    if !done {
        let hint = if smtp_word || ftp_word { 40 } else { 15 };
        let smtp_hint = if smtp_word && !ftp_word { hint } else { 15 };
        let ftp_hint = if ftp_word && !smtp_word { hint } else { 15 };
        if lines >= GREETING_LINES {
            return Greeting {
                smtp: Step::Match(smtp_hint),
                ftp: Step::Match(ftp_hint),
            };
        }
        return Greeting {
            smtp: Step::NeedMore(smtp_hint),
            ftp: Step::NeedMore(ftp_hint),
        };
    }
    // A "220" with neither protocol's words is genuinely ambiguous: both answer with a low
    // confidence, and the flow resolution lets the client's first command decide.
    let (mut smtp, mut ftp): (u8, u8) = match (smtp_word, ftp_word, smtp_weak) {
        (true, false, _) => (90, 0),
        (false, true, _) => (0, 90),
        (true, true, _) => (40, 40),
        // Kept below MISMATCH_MIN, so a client's FTP command can still win the flow.
        (false, false, true) => (45, 25),
        (false, false, false) => (30, 30),
    };
    if unprefixed {
        // SMTP puts the code on every line (RFC 5321 4.2.1); FTP need not.
        smtp = smtp.min(10);
        if !smtp_word || ftp_word {
            ftp = ftp.max(35);
        }
    }
    if &code == b"554" {
        ftp = 0;
    }
    // One protocol's words rule the other out.
    let step = |c: u8| if c > 0 { Step::Match(c) } else { Step::NoMatch };
    Greeting {
        smtp: step(smtp),
        ftp: step(ftp),
    }
}

// ---------------------------------------------------------------------------------------------
// SMTP (RFC 5321).

const SMTP_COMMANDS: &[(&[u8], u8)] = &[
    (b"EHLO ", 92),
    (b"HELO ", 90),
    (b"LHLO ", 85),
    (b"EHLO\r\n", 60),
    (b"HELO\r\n", 60),
    (b"MAIL FROM:", 70),
    (b"STARTTLS\r\n", 55),
];

pub(crate) fn smtp(data: &[u8]) -> Evidence {
    if data.first().is_some_and(u8::is_ascii_digit) {
        Evidence {
            step: greeting(data).smtp,
            role: Role::Server,
        }
    } else {
        Evidence {
            step: client_command(data, SMTP_COMMANDS),
            role: Role::Client,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// FTP (RFC 959, RFC 4217 for AUTH TLS, RFC 2389 for FEAT).

const FTP_COMMANDS: &[(&[u8], u8)] = &[
    (b"AUTH TLS", 85),
    (b"AUTH SSL", 85),
    (b"FEAT\r\n", 85),
    (b"OPTS UTF8", 70),
    (b"SYST\r\n", 60),
    // POP3 sends the same "USER name": shared, so low.
    (b"USER ", 45),
];

/// FTP's and POP3's "USER name" takes one argument; IRC's "USER user mode * :real name"
/// takes four and must not count.
fn user_single_arg(data: &[u8]) -> bool {
    match first_line(data, LINE_CAP) {
        Line::Complete { text, .. } => {
            let arg = text.get(5..).unwrap_or(&[]);
            !arg.is_empty() && !arg.contains(&b' ')
        }
        _ => true,
    }
}

/// Runs `table` over a client line, holding back a multi-argument USER.
fn client_command_user_checked(data: &[u8], table: &[(&[u8], u8)]) -> Step {
    if prefix_ci(data, b"USER ") == Prefix::Yes && !user_single_arg(data) {
        return Step::NoMatch;
    }
    client_command(data, table)
}

pub(crate) fn ftp(data: &[u8]) -> Evidence {
    if data.first().is_some_and(u8::is_ascii_digit) {
        Evidence {
            step: greeting(data).ftp,
            role: Role::Server,
        }
    } else {
        Evidence {
            step: client_command_user_checked(data, FTP_COMMANDS),
            role: Role::Client,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// POP3 (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).

const POP3_COMMANDS: &[(&[u8], u8)] = &[
    (b"CAPA\r\n", 85),
    (b"STLS\r\n", 85),
    (b"APOP ", 85),
    // Bare AUTH asks for the SASL mechanism list (RFC 1734 clients such as Outlook).
    (b"AUTH\r\n", 60),
    // FTP sends the same "USER name": shared, so low.
    (b"USER ", 45),
];

pub(crate) fn pop3(data: &[u8]) -> Evidence {
    match data.first() {
        Some(b'+') | Some(b'-') => pop3_greeting(data),
        _ => {
            // "AUTH TLS" / "AUTH SSL" is FTP's; any other AUTH mechanism is POP3's.
            if prefix_ci(data, b"AUTH ") == Prefix::Yes {
                let tls = prefix_ci(data, b"AUTH TLS");
                let ssl = prefix_ci(data, b"AUTH SSL");
                let step = if tls == Prefix::Yes || ssl == Prefix::Yes {
                    Step::NoMatch
                } else if tls == Prefix::Maybe || ssl == Prefix::Maybe {
                    Step::NeedMore(0)
                } else {
                    client_command(data, &[(b"AUTH ", 45)])
                };
                return Evidence {
                    step,
                    role: Role::Client,
                };
            }
            Evidence {
                step: client_command_user_checked(data, POP3_COMMANDS),
                role: Role::Client,
            }
        }
    }
}

fn pop3_greeting(data: &[u8]) -> Evidence {
    let role = Role::Server;
    let (word, base): (&[u8], u8) = if data.first() == Some(&b'+') {
        (b"+OK", 85)
    } else {
        // A server refusing service greets with -ERR; legal but rare.
        (b"-ERR", 40)
    };
    match prefix_ci(data, word) {
        Prefix::No => return Evidence::no(),
        Prefix::Maybe => return Evidence::need(20, role),
        Prefix::Yes => {}
    }
    match data.get(word.len()) {
        None => return Evidence::need(40, role),
        Some(b' ' | b'\r' | b'\n') => {}
        Some(_) => return Evidence::no(),
    }
    match first_line(data, LINE_CAP) {
        Line::Complete { text, .. } => {
            if !text
                .iter()
                .all(|&b| is_printable(b) || b == b'\t' || b >= 0x80)
            {
                return Evidence::no();
            }
            let c = if contains_ci(text, b"POP") {
                base.saturating_add(10)
            } else {
                base
            };
            Evidence::matched(c, role)
        }
        Line::Partial => Evidence::need(50, role),
        Line::TooLong => Evidence::no(),
    }
}

// ---------------------------------------------------------------------------------------------
// IMAP (RFC 9051 / RFC 3501).

const IMAP_COMMANDS: &[(&[u8], u8)] = &[
    (b"CAPABILITY", 85),
    (b"LOGIN", 85),
    (b"STARTTLS", 85),
    (b"AUTHENTICATE", 85),
    (b"ID", 60),
    (b"NOOP", 55),
    (b"LOGOUT", 55),
    (b"SELECT", 55),
    (b"LIST", 50),
];

pub(crate) fn imap(data: &[u8]) -> Evidence {
    if data.first() == Some(&b'*') {
        imap_greeting(data)
    } else {
        imap_command(data)
    }
}

fn imap_greeting(data: &[u8]) -> Evidence {
    let role = Role::Server;
    let mut possible = false;
    for (word, base) in [(&b"* OK"[..], 90u8), (b"* PREAUTH", 90), (b"* BYE", 60)] {
        match prefix_ci(data, word) {
            Prefix::Maybe => possible = true,
            Prefix::No => {}
            Prefix::Yes => {
                match data.get(word.len()) {
                    None => return Evidence::need(50, role),
                    Some(b' ' | b'\r' | b'\n') => {}
                    Some(_) => continue,
                }
                return match first_line(data, LINE_CAP) {
                    Line::Complete { text, .. } => {
                        if !text
                            .iter()
                            .all(|&b| is_printable(b) || b == b'\t' || b >= 0x80)
                        {
                            return Evidence::no();
                        }
                        let c = if contains_ci(text, b"IMAP") {
                            base.saturating_add(7)
                        } else {
                            base
                        };
                        Evidence::matched(c, role)
                    }
                    Line::Partial => Evidence::need(60, role),
                    Line::TooLong => Evidence::no(),
                };
            }
        }
    }
    if possible {
        Evidence::need(10, role)
    } else {
        Evidence::no()
    }
}

/// `tag SP command`: the tag is an atom without '+' (RFC 9051 9, "tag").
fn imap_command(data: &[u8]) -> Evidence {
    let role = Role::Client;
    const TAG_MAX: usize = 32;
    let is_tag_char = |b: u8| {
        is_printable(b)
            && !matches!(
                b,
                b' ' | b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']' | b'+'
            )
    };
    let tag_len = data.iter().take_while(|&&b| is_tag_char(b)).count();
    if tag_len == 0 || tag_len > TAG_MAX {
        return Evidence::no();
    }
    let Some(&sep) = data.get(tag_len) else {
        return Evidence::need(0, role);
    };
    if sep != b' ' {
        return Evidence::no();
    }
    let rest = data.get(tag_len + 1..).unwrap_or(&[]);
    let mut possible = false;
    for &(word, confidence) in IMAP_COMMANDS {
        match prefix_ci(rest, word) {
            Prefix::Maybe => possible = true,
            Prefix::No => {}
            Prefix::Yes => match rest.get(word.len()) {
                None => possible = true,
                Some(b' ' | b'\r' | b'\n') => {
                    return match first_line(data, LINE_CAP) {
                        Line::Complete { text, .. }
                            if text.iter().all(|&b| is_printable(b) || b >= 0x80) =>
                        {
                            Evidence::matched(confidence, role)
                        }
                        Line::Partial => Evidence::need(confidence / 2, role),
                        _ => Evidence::no(),
                    };
                }
                Some(_) => {}
            },
        }
    }
    if possible {
        Evidence::need(0, role)
    } else {
        Evidence::no()
    }
}

// ---------------------------------------------------------------------------------------------
// RDP: TPKT (RFC 1006) + X.224 connection request / confirm (MS-RDPBCGR 2.2.1.1, 2.2.1.2).

pub(crate) fn rdp(data: &[u8]) -> Evidence {
    const CR: u8 = 0xe0;
    const CC: u8 = 0xd0;
    if data.first().is_some_and(|&b| b != 3) || data.get(1).is_some_and(|&b| b != 0) {
        return Evidence::no();
    }
    let Some(tpkt_len) = be16(data, 2) else {
        return Evidence::need(if data.len() >= 2 { 10 } else { 0 }, Role::Either);
    };
    let tpkt_len = usize::from(tpkt_len);
    // TPKT 4 + X.224 fixed part 7; requests with cookies stay well under 1 KiB.
    if !(11..=2048).contains(&tpkt_len) {
        return Evidence::no();
    }
    let (Some(&li), Some(&code)) = (data.get(4), data.get(5)) else {
        return Evidence::need(20, Role::Either);
    };
    let role = match code {
        CR => Role::Client,
        CC => Role::Server,
        _ => return Evidence::no(),
    };
    // The length indicator counts the TPDU after itself; RDP's TPDU fills the TPKT.
    if usize::from(li) + 5 != tpkt_len || li < 6 {
        return Evidence::no();
    }
    let Some(fixed) = data.get(6..11) else {
        return Evidence::need(50, role);
    };
    let dst_ref = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = fixed[4];
    if class & 0xf0 != 0 || (role == Role::Client && dst_ref != 0) {
        return Evidence::no();
    }
    let Some(var) = data.get(11..tpkt_len) else {
        return Evidence::need(60, role);
    };
    if var.is_empty() {
        return Evidence::matched(70, role);
    }
    // ISO transport parameters (TPDU size, calling/called TSAP) mean plain COTP, as used by
    // S7 and MMS on port 102, not RDP.
    if matches!(var[0], 0xc0..=0xc2) {
        return Evidence::no();
    }
    let neg = |at: &[u8], ty: u8| at.len() >= 8 && at[0] == ty && at[2] == 8 && at[3] == 0;
    let confidence = match role {
        Role::Client => {
            if var.starts_with(b"Cookie: ") {
                97
            } else if neg(var, 0x01) {
                95
            } else {
                60
            }
        }
        _ => {
            if neg(var, 0x02) || neg(var, 0x03) {
                95
            } else {
                60
            }
        }
    };
    Evidence::matched(confidence, role)
}

// ---------------------------------------------------------------------------------------------
// DNS over TCP (RFC 1035 4.2.2, RFC 7766).

pub(crate) fn dns(data: &[u8]) -> Evidence {
    let Some(msg_len) = be16(data, 0) else {
        return Evidence::need(0, Role::Either);
    };
    let msg_len = usize::from(msg_len);
    // header 12 + shortest question (root name 1, type 2, class 2)
    if msg_len < 17 {
        return Evidence::no();
    }
    let msg = data.get(2..).unwrap_or(&[]);
    let msg = msg.get(..msg_len.min(msg.len())).unwrap_or(msg);
    // flags: QR(1) Opcode(4) AA TC RD | RA Z AD CD RCODE(4)
    let Some(&f1) = msg.get(2) else {
        return Evidence::need(5, Role::Either);
    };
    let query = f1 & 0x80 == 0;
    let role = if query { Role::Client } else { Role::Server };
    let opcode = (f1 >> 3) & 0x0f;
    // QUERY, STATUS, NOTIFY, UPDATE; IQUERY is obsolete (RFC 3425).
    if !matches!(opcode, 0 | 2 | 4 | 5) {
        return Evidence::no();
    }
    if query && f1 & 0x04 != 0 {
        return Evidence::no(); // AA in a query
    }
    let Some(&f2) = msg.get(3) else {
        return Evidence::need(10, role);
    };
    let rcode = f2 & 0x0f;
    if f2 & 0x40 != 0 || (query && rcode != 0) || rcode > 10 {
        return Evidence::no();
    }
    let Some(counts) = msg.get(4..12) else {
        return Evidence::need(15, role);
    };
    let qd = u16::from_be_bytes([counts[0], counts[1]]);
    let an = u16::from_be_bytes([counts[2], counts[3]]);
    let ns = u16::from_be_bytes([counts[4], counts[5]]);
    let ar = u16::from_be_bytes([counts[6], counts[7]]);
    if qd != 1 {
        return Evidence::no();
    }
    if query && opcode == 0 && (an != 0 || ns > 1 || ar > 2) {
        // An IXFR query carries one SOA in authority; EDNS and TSIG add up to two.
        return Evidence::no();
    }
    // Every resource record takes at least 11 bytes.
    let rr_total = usize::from(an) + usize::from(ns) + usize::from(ar);
    if 12 + 5 + rr_total.saturating_mul(11) > msg_len {
        return Evidence::no();
    }
    // Question name: uncompressed labels (nothing precedes it to point at).
    let mut at = 12usize;
    let mut name_len = 0usize;
    let mut hostname_like = true;
    loop {
        let Some(&label) = msg.get(at) else {
            return if at >= msg_len {
                Evidence::no()
            } else {
                Evidence::need(30, role)
            };
        };
        if label == 0 {
            at += 1;
            break;
        }
        if label > 63 {
            return Evidence::no();
        }
        name_len += usize::from(label) + 1;
        if name_len > 255 || at + 1 + usize::from(label) > msg_len {
            return Evidence::no();
        }
        match msg.get(at + 1..at + 1 + usize::from(label)) {
            Some(bytes) => {
                hostname_like &= bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            }
            None => return Evidence::need(35, role),
        }
        at += 1 + usize::from(label);
    }
    let (Some(qtype), Some(qclass)) = (be16(msg, at), be16(msg, at + 2)) else {
        return if at + 4 > msg_len {
            Evidence::no()
        } else {
            Evidence::need(40, role)
        };
    };
    if at + 4 > msg_len || qtype == 0 || !matches!(qclass, 1 | 3 | 4 | 254 | 255) {
        return Evidence::no();
    }
    let mut confidence: u8 = if hostname_like { 92 } else { 80 };
    if qclass != 1 {
        confidence -= 7;
    }
    Evidence::matched(confidence, role)
}

// ---------------------------------------------------------------------------------------------
// SOCKS4 / SOCKS4a.

pub(crate) fn socks4(data: &[u8]) -> Evidence {
    match data.first() {
        None => Evidence::need(0, Role::Either),
        Some(4) => socks4_request(data),
        Some(0) => socks4_reply(data),
        Some(_) => Evidence::no(),
    }
}

fn socks4_request(data: &[u8]) -> Evidence {
    const NAME_MAX: usize = 255;
    let role = Role::Client;
    let Some(&cmd) = data.get(1) else {
        return Evidence::need(0, role);
    };
    if cmd != 1 && cmd != 2 {
        return Evidence::no();
    }
    let (Some(port), Some(ip)) = (be16(data, 2), be32(data, 4)) else {
        return Evidence::need(20, role);
    };
    if port == 0 || ip == 0 {
        return Evidence::no();
    }
    // 0.0.0.x with x != 0 asks the proxy to resolve a name (SOCKS4a).
    let socks4a = ip < 0x100;
    let rest = data.get(8..).unwrap_or(&[]);
    let Some((user_end, user_ok)) = nul_terminated(rest, NAME_MAX) else {
        return need_or_no(rest.len() < NAME_MAX, 40, role);
    };
    if !user_ok {
        return Evidence::no();
    }
    if !socks4a {
        return Evidence::matched(85, role);
    }
    let host = rest.get(user_end + 1..).unwrap_or(&[]);
    match nul_terminated(host, NAME_MAX) {
        Some((n, true)) if n > 0 => Evidence::matched(90, role),
        Some(_) => Evidence::no(),
        None => need_or_no(host.len() < NAME_MAX, 60, role),
    }
}

/// Offset of the NUL ending a printable string of at most `max` bytes, and whether every
/// byte before it was printable.
fn nul_terminated(data: &[u8], max: usize) -> Option<(usize, bool)> {
    let window = data.get(..(max + 1).min(data.len())).unwrap_or(data);
    let end = window.iter().position(|&b| b == 0)?;
    let ok = window
        .get(..end)
        .unwrap_or(&[])
        .iter()
        .all(|&b| is_printable(b));
    Some((end, ok))
}

fn need_or_no(can_grow: bool, confidence: u8, role: Role) -> Evidence {
    if can_grow {
        Evidence::need(confidence, role)
    } else {
        Evidence::no()
    }
}

fn socks4_reply(data: &[u8]) -> Evidence {
    let role = Role::Server;
    let Some(&status) = data.get(1) else {
        return Evidence::need(0, role);
    };
    // 90 granted, 91 rejected, 92/93 identd failures.
    if !(0x5a..=0x5d).contains(&status) {
        return Evidence::no();
    }
    let Some(rest) = data.get(2..8) else {
        return Evidence::need(20, role);
    };
    // Eight bytes carry little structure: a weak match, stronger when the ignored fields
    // are zero as most servers send them.
    if rest.iter().all(|&b| b == 0) {
        Evidence::matched(50, role)
    } else {
        Evidence::matched(35, role)
    }
}

// ---------------------------------------------------------------------------------------------
// SOCKS5 (RFC 1928, RFC 1929).

pub(crate) fn socks5(data: &[u8]) -> Evidence {
    if data.first().is_some_and(|&b| b != 5) {
        return Evidence::no();
    }
    let Some(&second) = data.get(1) else {
        return Evidence::need(0, Role::Either);
    };
    // The server's method choice is two bytes; a client greeting is longer. Try both.
    let client = socks5_greeting(data, second);
    if client.step != Step::NoMatch {
        return client;
    }
    socks5_server(data, second)
}

fn socks5_method_ok(m: u8) -> bool {
    // 0x00-0x09 assigned by IANA, 0x80-0xfe private; 0xff means "none acceptable" and only
    // appears in a server's answer.
    m <= 0x09 || (0x80..=0xfe).contains(&m)
}

fn socks5_greeting(data: &[u8], n_methods: u8) -> Evidence {
    let role = Role::Client;
    if n_methods == 0 || n_methods > 16 {
        return Evidence::no();
    }
    let end = 2 + usize::from(n_methods);
    let methods = data.get(2..end.min(data.len())).unwrap_or(&[]);
    let mut seen = [false; 256];
    for &m in methods {
        if !socks5_method_ok(m) || seen[usize::from(m)] {
            return Evidence::no();
        }
        seen[usize::from(m)] = true;
    }
    let Some(after) = data.get(end..) else {
        return Evidence::need(30, role);
    };
    if after.is_empty() {
        return Evidence::matched(80, role);
    }
    // A client that sends more at once pipelines its request (05 cmd 00 atyp) or, after
    // choosing user/password, the RFC 1929 sub-negotiation (01 ulen ...).
    let request_ok = |r: &[u8]| match r {
        [5] | [5, 1..=3] | [5, 1..=3, 0] => Some(false),
        [5, 1..=3, 0, 1 | 3 | 4, ..] => Some(true),
        [1] => Some(false),
        [1, ulen, ..] if *ulen > 0 => Some(true),
        _ => None,
    };
    match request_ok(after) {
        Some(true) => Evidence::matched(92, role),
        Some(false) => Evidence::need(80, role),
        None => Evidence::no(),
    }
}

fn socks5_server(data: &[u8], method: u8) -> Evidence {
    let role = Role::Server;
    if !socks5_method_ok(method) && method != 0xff {
        return Evidence::no();
    }
    let mut rest = data.get(2..).unwrap_or(&[]);
    if rest.is_empty() {
        return Evidence::need(40, role);
    }
    if method == 2 {
        // RFC 1929 status: 01 00 (success) / 01 xx (failure)
        match rest {
            [1] => return Evidence::need(50, role),
            [1, _, tail @ ..] => rest = tail,
            _ => return Evidence::no(),
        }
        if rest.is_empty() {
            return Evidence::need(60, role);
        }
    }
    // Reply: 05 REP 00 ATYP ... (REP 0x00..=0x08)
    match rest {
        [5] | [5, 0..=8] | [5, 0..=8, 0] => Evidence::need(60, role),
        [5, 0..=8, 0, 1 | 3 | 4, ..] => Evidence::matched(85, role),
        _ => Evidence::no(),
    }
}

// ---------------------------------------------------------------------------------------------
// OpenVPN over TCP: each packet is a 16-bit length and then the packet (OpenVPN's
// ssl_pkt.h / reliable layer; the opcode byte is opcode << 3 | key_id).

const OVPN_CLIENT_RESET_V1: u8 = 1;
const OVPN_SERVER_RESET_V1: u8 = 2;
const OVPN_CLIENT_RESET_V2: u8 = 7;
const OVPN_SERVER_RESET_V2: u8 = 8;
const OVPN_CLIENT_RESET_V3: u8 = 10;
const OVPN_MAX_OPCODE: u8 = 11;
/// Reset packets are small; control packets stay under a typical MTU-sized TLS fragment.
const OVPN_MAX_PACKET: usize = 1600;
/// HMAC sizes a tls-auth key may use: MD5, SHA1, SHA256, SHA384, SHA512.
const OVPN_HMAC_SIZES: [usize; 5] = [16, 20, 32, 48, 64];

pub(crate) fn openvpn(data: &[u8]) -> Evidence {
    let Some(len) = be16(data, 0) else {
        return Evidence::need(0, Role::Either);
    };
    let len = usize::from(len);
    // opcode 1 + session id 8 + ack length 1 + packet id 4
    if !(14..=OVPN_MAX_PACKET).contains(&len) {
        return Evidence::no();
    }
    let Some(&op_byte) = data.get(2) else {
        return Evidence::need(0, Role::Either);
    };
    let (opcode, key_id) = (op_byte >> 3, op_byte & 0x07);
    let role = match opcode {
        OVPN_CLIENT_RESET_V1 | OVPN_CLIENT_RESET_V2 | OVPN_CLIENT_RESET_V3 => Role::Client,
        OVPN_SERVER_RESET_V1 | OVPN_SERVER_RESET_V2 => Role::Server,
        _ => return Evidence::no(),
    };
    // A session starts on key 0.
    if key_id != 0 {
        return Evidence::no();
    }
    let Some(pkt) = data.get(2..2 + len) else {
        return Evidence::need(30, role);
    };
    let sid = pkt.get(1..9).unwrap_or(&[]);
    if sid.iter().all(|&b| b == 0) {
        return Evidence::no();
    }
    let Some(confidence) = openvpn_layout(pkt, role) else {
        return Evidence::no();
    };
    // The client waits for the server's reset, so anything after this packet must itself
    // look like the next OpenVPN packet.
    if let Some(next) = data.get(2 + len..).filter(|n| !n.is_empty()) {
        if openvpn_next_header(next) == Some(false) {
            return Evidence::no();
        }
    }
    Evidence::matched(confidence, role)
}

/// Checks the packet against the three wire layouts: no authentication, tls-auth (HMAC,
/// packet id, time before the reliability header) and tls-crypt (packet id and time right
/// after the session id, then a 32-byte tag over an encrypted remainder).
fn openvpn_layout(pkt: &[u8], role: Role) -> Option<u8> {
    let reliability_ok = |at: usize| -> bool {
        let Some(&acks) = pkt.get(at) else {
            return false;
        };
        let acks = usize::from(acks);
        let mut pos = at + 1;
        match role {
            // The client's first packet acknowledges nothing.
            Role::Client if acks != 0 => return false,
            // The server's reset acknowledges the client's (ids, then the client's session id).
            Role::Server if acks == 0 || acks > 8 => return false,
            _ => {}
        }
        if acks > 0 {
            pos += 4 * acks;
            match pkt.get(pos..pos + 8) {
                Some(remote) if remote.iter().any(|&b| b != 0) => pos += 8,
                _ => return false,
            }
        }
        // The reset is the first reliable message: packet id 0.
        be32(pkt, pos) == Some(0)
    };
    let replay_ok = |at: usize| -> bool {
        let (Some(pid), Some(time)) = (be32(pkt, at), be32(pkt, at + 4)) else {
            return false;
        };
        // Packet ids start at 1 and stay small in a handshake; the time is a Unix time.
        (1..0x1_0000).contains(&pid) && (1_200_000_000..=4_102_444_800).contains(&time)
    };
    if reliability_ok(9) {
        return Some(92);
    }
    for h in OVPN_HMAC_SIZES {
        if replay_ok(9 + h) && reliability_ok(9 + h + 8) {
            return Some(94);
        }
    }
    if replay_ok(9) && pkt.len() >= 9 + 8 + 32 {
        return Some(85);
    }
    None
}

/// Header of the packet that follows the first one: `None` while too short to tell.
fn openvpn_next_header(next: &[u8]) -> Option<bool> {
    let len = usize::from(be16(next, 0)?);
    let op = *next.get(2)? >> 3;
    Some((14..=OVPN_MAX_PACKET).contains(&len) && (1..=OVPN_MAX_OPCODE).contains(&op))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::samples;

    fn st(f: fn(&[u8]) -> Evidence, data: &[u8]) -> Step {
        f(data).step
    }

    #[test]
    fn tls_rejects_bad_headers_and_hello_fields() {
        let ch = samples::hex(samples::TLS_CLIENT_HELLO_OPENSSL);
        assert_eq!(st(tls, &ch), Step::Match(98));
        let bad = |at: usize, v: u8| {
            let mut c = ch.clone();
            c[at] = v;
            st(tls, &c)
        };
        assert_eq!(bad(1, 0x02), Step::NoMatch, "record major version");
        assert_eq!(bad(2, 0x07), Step::NoMatch, "record minor version");
        // A valid record header carrying a hello type claims TLS even when the hello body is
        // impossible: that is what fake TLS looks like, and the handshake checks judge it.
        let fake = Step::Match(FAKE_HELLO_CONFIDENCE);
        assert_eq!(bad(9, 0x02), fake, "client_version");
        assert_eq!(bad(43, 33), fake, "session id longer than 32");
        // cipher_suites length (after the 32-byte session id) made odd
        assert_eq!(bad(77, ch[77] | 1), fake, "odd cipher list length");
        assert_eq!(
            st(tls, b"\x16\x03\x01\x00\x00"),
            Step::NoMatch,
            "empty record"
        );
        assert_eq!(
            st(tls, b"\x16\x03\x03\x48\x01"),
            Step::NoMatch,
            "record too long"
        );
        assert_eq!(
            st(tls, b"\x16\x03\x01\xff\xff\x01\x00\x00\x40"),
            fake,
            "a 64 KiB record announcing a ClientHello claims TLS"
        );
        assert_eq!(
            st(tls, b"\x16\x03\x01\xff\xff\x0b\x00\x00\x40"),
            Step::NoMatch,
            "an oversized record without a hello type does not"
        );
        assert_eq!(
            st(tls, b"\x16\x03\x01\x00\x30\x01\x00\x00\x10"),
            fake,
            "hello too short"
        );
        // A hello split into a 20-byte first record is fragmented, still TLS-framed.
        let mut frag = ch[..25].to_vec();
        frag[3] = 0;
        frag[4] = 20;
        frag.extend_from_slice(b"\x16\x03\x01\x00\x10");
        assert_eq!(st(tls, &frag), Step::Match(60));
        let sh = samples::hex(samples::TLS12_SERVER_HELLO);
        let mut badcomp = sh.clone();
        // compression method after an empty session id and the cipher suite
        assert_eq!(sh[43], 0);
        badcomp[5 + 4 + 2 + 32 + 1 + 2] = 5;
        assert_eq!(st(tls, &badcomp), fake);
    }

    #[test]
    fn tls_records_without_a_hello() {
        let app = |len: u16| {
            let mut r = vec![0x17, 0x03, 0x03];
            r.extend_from_slice(&len.to_be_bytes());
            r.extend(std::iter::repeat_n(0xab, usize::from(len)));
            r
        };
        assert_eq!(st(tls, &app(40)), Step::Match(45));
        assert_eq!(st(tls, &app(40)[..30]), Step::NeedMore(40));
        let two = [app(40), app(100)].concat();
        assert_eq!(st(tls, &two), Step::Match(65));
        let mut mixed = app(40);
        mixed.extend_from_slice(&[0x17, 0x03, 0x01, 0, 5]);
        assert_eq!(
            st(tls, &mixed),
            Step::NoMatch,
            "version changed between records"
        );
        let mut junk = app(40);
        junk.extend_from_slice(b"GET / HTTP/1.1");
        assert_eq!(
            st(tls, &junk),
            Step::NoMatch,
            "no record where one should start"
        );
        assert_eq!(
            st(tls, b"\x14\x03\x03\x00\x02\x01\x01"),
            Step::NoMatch,
            "CCS is one byte"
        );
        assert_eq!(st(tls, b"\x14\x03\x03\x00\x01\x01"), Step::Match(45));
    }

    #[test]
    fn sslv2_needs_consistent_lengths() {
        let mut h = samples::sslv2_client_hello();
        assert_eq!(st(tls, &h), Step::Match(90));
        h[10] = 8; // challenge shorter than 16
        assert_eq!(st(tls, &h), Step::NoMatch);
        assert_eq!(
            st(tls, b"\x80\x2e\x02\x03\x01"),
            Step::NoMatch,
            "not CLIENT-HELLO"
        );
    }

    #[test]
    fn greetings_need_the_right_code_and_shape() {
        let both = |d: &[u8]| (st(smtp, d), st(ftp, d));
        assert_eq!(both(b"220X ready\r\n"), (Step::NoMatch, Step::NoMatch));
        assert_eq!(both(b"230 logged in\r\n"), (Step::NoMatch, Step::NoMatch));
        assert_eq!(both(b"22"), (Step::NeedMore(0), Step::NeedMore(0)));
        assert_eq!(both(b"2a0 x\r\n"), (Step::NoMatch, Step::NoMatch));
        assert_eq!(both(b"220 \x00\x01\r\n"), (Step::NoMatch, Step::NoMatch));
        assert_eq!(
            both(b"554 SMTP synchronization error\r\n"),
            (Step::Match(90), Step::NoMatch)
        );
        assert_eq!(
            both(b"220 FTP and ESMTP gateway\r\n"),
            (Step::Match(40), Step::Match(40))
        );
        // A multi-line reply whose inner lines lack the code is FTP-shaped, not SMTP.
        assert_eq!(
            both(b"220-Welcome\r\n  to our server\r\n220 ready\r\n"),
            (Step::Match(10), Step::Match(35))
        );
        // FTP's inner lines may read anything, even another code: the reply stays open.
        assert_eq!(
            both(b"220-a\r\n221 b\r\n"),
            (Step::NeedMore(15), Step::NeedMore(15))
        );
        assert_eq!(
            both(b"331 Password required\r\n"),
            (Step::NoMatch, Step::NoMatch)
        );
        assert_eq!(
            both(b"220 mail.example.com ready\r\n"),
            (Step::Match(45), Step::Match(25))
        );
        assert_eq!(
            both(b"220 mail.example.com FTP ready\r\n"),
            (Step::NoMatch, Step::Match(90))
        );
    }

    #[test]
    fn text_clients_and_servers_reject_near_misses() {
        assert_eq!(st(pop3, b"+OKAY\r\n"), Step::NoMatch);
        assert_eq!(st(pop3, b"-ERR [SYS/TEMP] busy\r\n"), Step::Match(40));
        assert_eq!(st(pop3, b"+OK"), Step::NeedMore(40));
        assert_eq!(st(pop3, b"AUTH TLS\r\n"), Step::NoMatch, "that is FTP's");
        assert_eq!(st(pop3, b"AUTH PLAIN\r\n"), Step::Match(45));
        assert_eq!(st(pop3, b"CAPA\x00\r\n"), Step::NoMatch);
        assert_eq!(st(imap, b"* OKAY\r\n"), Step::NoMatch);
        assert_eq!(st(imap, b"* BYE shutting down\r\n"), Step::Match(60));
        assert_eq!(
            st(imap, b"a+1 LOGIN x y\r\n"),
            Step::NoMatch,
            "'+' is not a tag char"
        );
        assert_eq!(
            st(imap, b"a1 FETCH 1 BODY[]\r\n"),
            Step::NoMatch,
            "not an opening command"
        );
        assert_eq!(st(imap, b"a1 CAPABILITYX\r\n"), Step::NoMatch);
        assert_eq!(st(imap, b"a1 CAPA"), Step::NeedMore(0));
        assert_eq!(st(smtp, b"EHLO\r\n"), Step::Match(60));
        assert_eq!(st(smtp, b"EHLO x\x01\r\n"), Step::NoMatch);
        assert_eq!(st(smtp, b"EHL"), Step::NeedMore(0));
        assert_eq!(st(ftp, b"USER a b\r\n"), Step::NoMatch);
    }

    #[test]
    fn rdp_is_not_plain_cotp() {
        // S7comm-style COTP CR with TSAP parameters (port 102 traffic).
        let s7 = [
            0x03, 0x00, 0x00, 0x16, 0x11, 0xe0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xc1, 0x02, 0x01,
            0x00, 0xc2, 0x02, 0x01, 0x02, 0xc0, 0x01, 0x0a,
        ];
        assert_eq!(st(rdp, &s7), Step::NoMatch);
        let cr = [3, 0, 0, 11, 6, 0xe0, 0, 0, 0, 0, 0];
        assert_eq!(st(rdp, &cr), Step::Match(70), "bare CR");
        let mut li = cr;
        li[4] = 7;
        assert_eq!(
            st(rdp, &li),
            Step::NoMatch,
            "length indicator disagrees with TPKT"
        );
        let mut dst = cr;
        dst[6] = 1;
        assert_eq!(
            st(rdp, &dst),
            Step::NoMatch,
            "CR carries destination reference 0"
        );
        assert_eq!(st(rdp, &[3, 0, 0, 8]), Step::NoMatch, "too short for X.224");
        assert_eq!(
            st(rdp, &[3, 0, 0, 11, 6, 0xf0]),
            Step::NoMatch,
            "DT is not an opener"
        );
    }

    #[test]
    fn dns_header_and_question_are_checked() {
        let q = samples::dns_query("example.com");
        assert_eq!(st(dns, &q), Step::Match(92));
        let with = |at: usize, v: u8| {
            let mut m = q.clone();
            m[at] = v;
            st(dns, &m)
        };
        assert_eq!(with(7, 2), Step::NoMatch, "two questions");
        assert_eq!(with(5, 0x40 | 0x20), Step::NoMatch, "Z bit");
        assert_eq!(with(4, 3 << 3), Step::NoMatch, "opcode 3");
        assert_eq!(with(5, 0x23), Step::NoMatch, "rcode in a query");
        assert_eq!(with(14, 64), Step::NoMatch, "label longer than 63");
        assert_eq!(with(14, 0xc0), Step::NoMatch, "pointer in the first name");
        assert_eq!(with(9, 1), Step::NoMatch, "answers in a query");
        let qclass_lo = q.len() - 11 - 1;
        assert_eq!(with(qclass_lo, 7), Step::NoMatch, "qclass 7");
        assert_eq!(
            with(1, 15),
            Step::NoMatch,
            "message shorter than its question"
        );
        assert_eq!(st(dns, &q[..10]), Step::NeedMore(15));
        let binary = {
            let mut m = samples::dns_query("ab.example");
            m[15] = 0xfe; // a label byte that is not hostname-like
            m
        };
        assert_eq!(st(dns, &binary), Step::Match(80));
    }

    #[test]
    fn socks_requests_and_replies() {
        assert_eq!(
            st(socks4, &[4, 1, 0, 0, 127, 0, 0, 1, 0]),
            Step::NoMatch,
            "port 0"
        );
        assert_eq!(
            st(socks4, &[4, 3, 0, 80, 127, 0, 0, 1, 0]),
            Step::NoMatch,
            "command 3"
        );
        assert_eq!(
            st(socks4, &[4, 1, 0, 80, 127, 0, 0, 1, b'a', 1, 0]),
            Step::NoMatch
        );
        let mut endless = vec![4, 1, 0, 80, 10, 0, 0, 1];
        endless.extend(std::iter::repeat_n(b'u', 300));
        assert_eq!(st(socks4, &endless), Step::NoMatch, "user id without NUL");
        assert_eq!(
            st(socks4, &[4, 1, 0, 80, 0, 0, 0, 1, 0]),
            Step::NeedMore(60),
            "4a host pending"
        );
        assert_eq!(
            st(socks4, &[4, 1, 0, 80, 0, 0, 0, 1, 0, 0]),
            Step::NoMatch,
            "4a empty host"
        );
        assert_eq!(st(socks4, &[0, 0x5b, 0, 0, 0, 0, 0, 0]), Step::Match(50));
        assert_eq!(st(socks4, &[0, 0x5a, 1, 2, 3, 4, 5, 6]), Step::Match(35));
        assert_eq!(st(socks4, &[0, 0x40, 0, 0, 0, 0, 0, 0]), Step::NoMatch);

        assert_eq!(st(socks5, &[5, 2, 0, 0]), Step::NoMatch, "duplicate method");
        assert_eq!(st(socks5, &[5, 1, 0xff]), Step::NoMatch, "0xff offered");
        assert_eq!(
            st(socks5, &[5, 1, 0, 0x47, 0x45, 0x54]),
            Step::NoMatch,
            "trailing junk"
        );
        assert_eq!(st(socks5, &[5, 1, 0, 5, 1, 0]), Step::NeedMore(80));
        assert_eq!(
            st(socks5, &[5, 0]),
            Step::NeedMore(40),
            "server choice alone"
        );
        assert_eq!(st(socks5, &[5, 0xff, 9]), Step::NoMatch);
        assert_eq!(st(socks5, &[4, 1]), Step::NoMatch);
    }

    #[test]
    fn openvpn_needs_a_reset_on_key_zero() {
        let c = samples::openvpn_client_reset_plain();
        assert_eq!(st(openvpn, &c), Step::Match(92));
        let with = |at: usize, v: u8| {
            let mut m = c.clone();
            m[at] = v;
            st(openvpn, &m)
        };
        assert_eq!(with(2, (7 << 3) | 1), Step::NoMatch, "key id 1");
        assert_eq!(with(2, 4 << 3), Step::NoMatch, "P_CONTROL_V1 does not open");
        assert_eq!(
            with(11, 1),
            Step::NoMatch,
            "client reset acknowledges nothing"
        );
        assert_eq!(with(15, 1), Step::NoMatch, "first message id is 0");
        let mut zero_sid = c.clone();
        zero_sid[3..11].fill(0);
        assert_eq!(st(openvpn, &zero_sid), Step::NoMatch);
        assert_eq!(st(openvpn, &c[..10]), Step::NeedMore(30));
        let mut next = c.clone();
        next.extend_from_slice(&[0x7f, 0xff, 0x28]);
        assert_eq!(
            st(openvpn, &next),
            Step::NoMatch,
            "implausible second packet"
        );
        let mut ack = c.clone();
        ack.extend_from_slice(&[0x00, 0x16, 5 << 3]);
        assert_eq!(st(openvpn, &ack), Step::Match(92), "an ACK may follow");
        assert_eq!(
            st(openvpn, &[0x00, 0x0d, 0x38]),
            Step::NoMatch,
            "shorter than a reset"
        );
        let s = samples::openvpn_server_reset_plain();
        assert_eq!(openvpn(&s).role, Role::Server);
        let mut no_ack = s.clone();
        no_ack[11] = 0;
        assert_eq!(
            st(openvpn, &no_ack),
            Step::NoMatch,
            "server reset acks the client"
        );
    }

    #[test]
    fn helpers_handle_edges() {
        assert_eq!(first_line(b"", 10), Line::Partial);
        assert_eq!(first_line(b"abc", 3), Line::TooLong);
        assert_eq!(
            first_line(b"ab\r\ncd", 10),
            Line::Complete {
                text: b"ab",
                len: 4
            }
        );
        assert_eq!(prefix_ci(b"eh", b"EHLO"), Prefix::Maybe);
        assert_eq!(prefix_ci(b"ehlo x", b"EHLO"), Prefix::Yes);
        assert_eq!(prefix_ci(b"ehx", b"EHLO"), Prefix::No);
        assert!(contains_ci(b"220 esmtp", b"SMTP"));
        assert!(!contains_ci(b"ab", b"abc"));
        assert_eq!(be16(&[1], 0), None);
        assert_eq!(be32(&[1, 2, 3, 4], usize::MAX), None);
    }
}
