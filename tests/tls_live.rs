//! Real TLS stacks: `openssl s_server` serving certificates made here with the openssl CLI
//! (CA-signed and right, self-signed, expired, for another name, valid too long), reached by
//! `openssl s_client` and `curl` over TLS 1.2 and 1.3 on the loopback of a private network
//! namespace, captured with `tcpdump -w`, and replayed through unmask.
//!
//! Expired certificates: openssl 3.0's `req`/`x509` cannot set a notBefore in the past, so the
//! test signs with `openssl ca -startdate/-enddate` and a minimal CA config.
//!
//! Needs root (network namespaces, tcpdump) and the openssl, curl, tcpdump and ip tools; it
//! says "skipped" and why when any is missing. Every process it starts is killed and every
//! namespace and file removed when a scenario ends, also on failure (the `Lab` guard).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use unmask::config::Config;

/// Finding names the TLS checks own (others, e.g. protocol/port, are not this test's concern).
const OURS: &[&str] = &[
    "tls_malformed_handshake",
    "tls_answered_by_non_tls",
    "tls_one_sided",
    "tls_fingerprint_denied",
    "tls_fingerprint_not_allowed",
    "cert_issuer_watched",
    "cert_issuer_not_allowed",
    "cert_self_signed",
    "cert_expired",
    "cert_not_yet_valid",
    "cert_validity_too_long",
    "cert_name_mismatch",
    "cert_invalid",
    "tls_fatal_alert_after_certificate",
    "sni_missing",
    "sni_ip_literal",
    "sni_alpn_mismatch",
];

const HOST: &str = "www.example.com";

/// Why the lab cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces and tcpdump need it)".into());
    }
    for tool in ["openssl", "curl", "tcpdump", "ip"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "{tool} not installed (scripts/deps.sh installs it)"
            ));
        }
    }
    None
}

fn skip(test: &str) -> bool {
    match unavailable() {
        Some(why) => {
            eprintln!("{test}: skipped: {why}");
            true
        }
        None => false,
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace with its loopback up, the processes started in it, and a scratch
/// directory. Dropping it kills the processes and removes the namespace and the files.
struct Lab {
    ns: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

static LABS: AtomicU32 = AtomicU32::new(0);

impl Lab {
    fn new(tag: &str) -> Lab {
        let ns = format!(
            "unmask-tls-{}-{}-{tag}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &ns]));
        // Constructed before the next command so a failure still removes the namespace.
        let lab = Lab {
            ns,
            dir: tempfile::tempdir().expect("temporary directory"),
            children: Vec::new(),
        };
        run(Command::new("ip").args(["netns", "exec", &lab.ns, "ip", "link", "set", "lo", "up"]));
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn in_ns(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// Starts `cmd` in the background and waits until a line of its output (stdout or
    /// stderr, per `from_stderr`) contains `ready`.
    fn spawn_until(&mut self, mut cmd: Command, from_stderr: bool, ready: &str) {
        if from_stderr {
            cmd.stderr(Stdio::piped()).stdout(Stdio::null());
        } else {
            cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stream: Box<dyn Read + Send> = if from_stderr {
            Box::new(child.stderr.take().expect("piped stderr"))
        } else {
            Box::new(child.stdout.take().expect("piped stdout"))
        };
        self.children.push(child);
        let (tx, rx) = mpsc::channel();
        let ready = ready.to_string();
        std::thread::spawn(move || {
            let mut seen = false;
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if !seen && line.contains(&ready) {
                    seen = true;
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{cmd:?} never said {:?}", "ready"));
    }

    /// Runs a client to completion (its exit status is not judged: a client that refuses a
    /// certificate fails on purpose).
    fn client(&self, mut cmd: Command) {
        let status = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let _ = status;
    }

    /// Stops tcpdump (the first process started) so it flushes the capture.
    fn stop_capture(&mut self) {
        std::thread::sleep(Duration::from_millis(300));
        if let Some(tcpdump) = self.children.first_mut() {
            let _ = Command::new("kill")
                .args(["-INT", &tcpdump.id().to_string()])
                .status();
            let _ = tcpdump.wait();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.ns])
            .status();
    }
}

/// The certificates of one scenario.
#[derive(Clone, Copy, Debug)]
enum Cert {
    /// Signed by the test CA for the name the clients use, valid 90 days from yesterday.
    Good,
    SelfSigned,
    /// Signed by the test CA, valid only in 2020.
    Expired,
    /// Signed by the test CA for other.example.net.
    OtherName,
    /// Signed by the test CA for 800 days.
    TooLong,
}

/// Makes the CA and the scenario's leaf in the lab directory; returns (cert, key) paths.
fn make_certs(lab: &Lab, which: Cert) -> (PathBuf, PathBuf) {
    let d = lab.dir.path();
    let p = |n: &str| d.join(n).to_string_lossy().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args([
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "3650",
        ])
        .args(["-subj", "/O=Unmask Live Test CA/CN=Unmask Live Root"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
    let (cert, key) = (d.join("leaf.pem"), d.join("leaf.key"));
    if let Cert::SelfSigned = which {
        run(Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .args([
                "-keyout",
                &p("leaf.key"),
                "-out",
                &p("leaf.pem"),
                "-days",
                "90",
            ])
            .args(["-subj", &format!("/CN={HOST}")])
            .args(["-addext", &format!("subjectAltName=DNS:{HOST}")]));
        return (cert, key);
    }
    let name = match which {
        Cert::OtherName => "other.example.net",
        _ => HOST,
    };
    run(Command::new("openssl")
        .args(["req", "-new"])
        .args(ec)
        .args(["-keyout", &p("leaf.key"), "-out", &p("leaf.csr")])
        .args(["-subj", &format!("/CN={name}")]));
    std::fs::create_dir_all(d.join("newcerts")).unwrap();
    std::fs::write(d.join("index.txt"), "").unwrap();
    std::fs::write(d.join("serial"), "1000\n").unwrap();
    std::fs::write(
        d.join("ca.cnf"),
        format!(
            "[ca]\ndefault_ca = test_ca\n[test_ca]\ndatabase = {}\nnew_certs_dir = {}\n\
             certificate = {}\nprivate_key = {}\nserial = {}\ndefault_md = sha256\n\
             policy = policy_any\nunique_subject = no\n[policy_any]\ncommonName = supplied\n",
            p("index.txt"),
            p("newcerts"),
            p("ca.pem"),
            p("ca.key"),
            p("serial")
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("ext.cnf"),
        format!("[leaf]\nbasicConstraints = CA:FALSE\nsubjectAltName = DNS:{name}\n"),
    )
    .unwrap();
    let mut sign = Command::new("openssl");
    sign.args(["ca", "-batch", "-notext", "-config", &p("ca.cnf")])
        .args(["-in", &p("leaf.csr"), "-out", &p("leaf.pem")])
        .args(["-extfile", &p("ext.cnf"), "-extensions", "leaf"]);
    match which {
        Cert::Expired => {
            sign.args([
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20201231000000Z",
            ]);
        }
        Cert::TooLong => {
            sign.args(["-days", "800"]);
        }
        _ => {
            sign.args(["-days", "90"]);
        }
    }
    run(&mut sign);
    (cert, key)
}

/// One TLS client run against the lab's server.
#[derive(Clone, Copy, Debug)]
enum Client {
    /// `openssl s_client` at TLS 1.2 without verification (completes the handshake).
    SClient12,
    /// `openssl s_client` at TLS 1.3 without verification.
    SClient13,
    /// `curl` at TLS 1.2 verifying against the test CA (refuses bad certificates with an
    /// alert).
    Curl12,
    /// `curl` at TLS 1.3 verifying against the test CA.
    Curl13,
}

fn client_cmd(lab: &Lab, c: Client) -> Command {
    let ca = lab.path("ca.pem").to_string_lossy().to_string();
    match c {
        Client::SClient12 | Client::SClient13 => {
            let mut cmd = lab.in_ns("openssl");
            cmd.args(["s_client", "-connect", "127.0.0.1:443", "-servername", HOST]);
            cmd.arg(if matches!(c, Client::SClient12) {
                "-tls1_2"
            } else {
                "-tls1_3"
            });
            cmd
        }
        Client::Curl12 | Client::Curl13 => {
            let mut cmd = lab.in_ns("curl");
            cmd.args(["-s", "-o", "/dev/null", "--max-time", "5", "--cacert", &ca])
                .args(["--resolve", &format!("{HOST}:443:127.0.0.1")]);
            if matches!(c, Client::Curl12) {
                cmd.args(["--tlsv1.2", "--tls-max", "1.2"]);
            } else {
                cmd.arg("--tlsv1.3");
            }
            cmd.arg(format!("https://{HOST}/"));
            cmd
        }
    }
}

/// Findings of our checks per flow (by client port), with the flow's TLS version.
struct Replayed {
    flows: Vec<(u16, String, BTreeSet<String>)>,
    records: Vec<Value>,
}

impl Replayed {
    fn describe(&self) -> String {
        let mut s = String::new();
        for r in self
            .records
            .iter()
            .filter(|r| r["event_type"] == "alert" || r["event_type"] == "tls")
        {
            s.push_str(&r.to_string());
            s.push('\n');
        }
        s
    }
}

fn replay(pcap: &Path) -> Replayed {
    let (records, error) = common::replay_capture(pcap, Config::default());
    assert!(error.is_none(), "capture error: {error:?}");
    let mut flows = Vec::new();
    for tls in records.iter().filter(|r| r["event_type"] == "tls") {
        let port = tls["src_port"].as_u64().unwrap_or(0) as u16;
        let version = tls["tls"]["version"].as_str().unwrap_or("").to_string();
        let found = records
            .iter()
            .filter(|a| a["event_type"] == "alert" && a["flow_id"] == tls["flow_id"])
            .map(|a| a["unmask"]["finding"].as_str().unwrap_or("").to_string())
            .filter(|n| OURS.contains(&n.as_str()))
            .collect();
        flows.push((port, version, found));
    }
    Replayed { flows, records }
}

/// Serves `cert` in a fresh lab, runs `clients` one after the other while tcpdump captures,
/// and replays the capture.
fn scenario(tag: &str, cert: Cert, clients: &[Client]) -> Replayed {
    let mut lab = Lab::new(tag);
    let (cert_path, key_path) = make_certs(&lab, cert);
    let pcap = lab.path("capture.pcap");
    let mut tcpdump = lab.in_ns("tcpdump");
    tcpdump
        .args(["-i", "lo", "--immediate-mode", "-U", "-s", "0", "-w"])
        .arg(&pcap)
        .arg("tcp");
    lab.spawn_until(tcpdump, true, "listening on");
    let mut server = lab.in_ns("openssl");
    server
        .args(["s_server", "-accept", "443", "-www"])
        .arg("-cert")
        .arg(&cert_path)
        .arg("-key")
        .arg(&key_path);
    lab.spawn_until(server, false, "ACCEPT");
    for c in clients {
        lab.client(client_cmd(&lab, *c));
    }
    lab.stop_capture();
    let r = replay(&pcap);
    if std::env::var_os("UNMASK_LIVE_VERBOSE").is_some() {
        eprintln!("{tag}:\n{}", r.describe());
    }
    r
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Every TLS 1.2 flow raised exactly `want12` (plus `extra_when_refused` for flows whose
/// client refused the certificate), and every TLS 1.3 flow raised nothing (its certificate
/// is encrypted and its handshake genuine).
fn check(r: &Replayed, clients: usize, want12: &[&str], refused: &[&str]) {
    assert_eq!(
        r.flows.len(),
        clients,
        "one tls record per client:\n{}",
        r.describe()
    );
    for (port, version, found) in &r.flows {
        match version.as_str() {
            "TLS 1.2" => {
                let plain = set(want12);
                let with_refusal: BTreeSet<String> =
                    plain.iter().cloned().chain(set(refused)).collect();
                assert!(
                    *found == plain || (!refused.is_empty() && *found == with_refusal),
                    "TLS 1.2 flow from port {port}: got {found:?}, want {plain:?} (or with {refused:?})\n{}",
                    r.describe()
                );
            }
            "TLS 1.3" => assert!(
                found.is_empty(),
                "TLS 1.3 flow from port {port}: got {found:?}\n{}",
                r.describe()
            ),
            other => panic!("unexpected version {other:?}\n{}", r.describe()),
        }
    }
    assert!(
        r.flows.iter().any(|(_, v, _)| v == "TLS 1.2")
            && r.flows.iter().any(|(_, v, _)| v == "TLS 1.3"),
        "both versions ran:\n{}",
        r.describe()
    );
}

const ALL_CLIENTS: &[Client] = &[
    Client::SClient12,
    Client::Curl12,
    Client::SClient13,
    Client::Curl13,
];

#[test]
fn ca_signed_certificate_for_the_right_name_raises_nothing() {
    if skip("ca_signed_certificate_for_the_right_name_raises_nothing") {
        return;
    }
    let r = scenario("good", Cert::Good, ALL_CLIENTS);
    check(&r, ALL_CLIENTS.len(), &[], &[]);
}

#[test]
fn self_signed_certificate_is_flagged_and_its_refusal_too() {
    if skip("self_signed_certificate_is_flagged_and_its_refusal_too") {
        return;
    }
    let r = scenario("self", Cert::SelfSigned, ALL_CLIENTS);
    check(
        &r,
        ALL_CLIENTS.len(),
        &["cert_self_signed"],
        &["tls_fatal_alert_after_certificate"],
    );
    // curl verifies and refuses: its flow carries the fatal alert.
    assert!(
        r.flows
            .iter()
            .any(|(_, _, f)| f.contains("tls_fatal_alert_after_certificate")),
        "curl's refusal was not seen:\n{}",
        r.describe()
    );
}

#[test]
fn expired_certificate_is_flagged_at_packet_time() {
    if skip("expired_certificate_is_flagged_at_packet_time") {
        return;
    }
    let r = scenario("expired", Cert::Expired, ALL_CLIENTS);
    check(
        &r,
        ALL_CLIENTS.len(),
        &["cert_expired"],
        &["tls_fatal_alert_after_certificate"],
    );
}

#[test]
fn certificate_for_another_name_is_a_name_mismatch() {
    if skip("certificate_for_another_name_is_a_name_mismatch") {
        return;
    }
    let r = scenario("mismatch", Cert::OtherName, ALL_CLIENTS);
    check(
        &r,
        ALL_CLIENTS.len(),
        &["cert_name_mismatch"],
        &["tls_fatal_alert_after_certificate"],
    );
}

#[test]
fn certificate_valid_for_800_days_is_too_long() {
    if skip("certificate_valid_for_800_days_is_too_long") {
        return;
    }
    let clients = &[Client::SClient12, Client::SClient13];
    let r = scenario("long", Cert::TooLong, clients);
    check(&r, clients.len(), &["cert_validity_too_long"], &[]);
}
