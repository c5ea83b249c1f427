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
        Some(false) => return Evidence::no(),
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
        return Evidence::no();
    }
    // The hello body may continue in later records (a fragmented ClientHello), so bytes past
    // the first record are not read: only what this record holds is verified.
    let avail = data.len().min(record_end);
    let body_end = (BODY + hs_len).min(record_end);
    let Some(version) = be16(data, BODY) else {
        return need_or_short(avail, record_end, 75, role);
    };
    if !(0x0300..=0x0304).contains(&version) {
        return Evidence::no();
    }
    let sid_at = BODY + 2 + 32;
    let Some(&sid_len) = data.get(sid_at).filter(|_| sid_at < record_end) else {
        return need_or_short(avail, record_end, 80, role);
    };
    if sid_len > 32 {
        return Evidence::no();
    }
    let after_sid = sid_at + 1 + usize::from(sid_len);
    match role {
        Role::Client => {
            let Some(cs_len) = be16(data, after_sid).filter(|_| after_sid + 2 <= record_end) else {
                return need_or_short(avail, record_end, 85, role);
            };
            if cs_len < 2 || cs_len % 2 != 0 {
                return Evidence::no();
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
                return Evidence::no();
            }
            Evidence::matched(97, role)
        }
    }
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

const SMTP_WORDS: &[&[u8]] = &[b"SMTP", b"Postfix", b"Sendmail", b"Exim", b"qmail", b"MAIL"];
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
    let (mut smtp, mut ftp): (u8, u8) = match (smtp_word, ftp_word) {
        (true, false) => (90, 0),
        (false, true) => (0, 90),
        (true, true) => (40, 40),
        (false, false) => (30, 30),
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
