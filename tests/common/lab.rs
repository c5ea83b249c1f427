//! The namespace lab (scripts/lab.sh) for tests: client <-> appliance <-> server, built per test
//! under its own prefix and torn down on drop, also when the test fails.
#![allow(dead_code)]

pub use std::io::{BufRead, BufReader, Read};
pub use std::path::{Path, PathBuf};
pub use std::process::{Child, Command, Output, Stdio};
pub use std::sync::{Arc, Mutex};
pub use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub static SERIAL: Mutex<()> = Mutex::new(());

pub const DIAG: &str = env!("CARGO_BIN_EXE_unmask-diag");
pub const LAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lab.sh");

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Root and every tool the lab needs, or a "skipped" line.
pub fn can_run(test: &str) -> bool {
    root_with(
        test,
        &["ip", "ethtool", "ping", "curl", "socat", "python3"],
        "run scripts/deps.sh as root",
    )
}

/// Root and every one of `tools`, or a "skipped" line naming what is missing and `hint`.
pub fn root_with(test: &str, tools: &[&str], hint: &str) -> bool {
    // The effective uid through `id -u`: no unsafe libc call in a test.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if !root || !missing.is_empty() {
        eprintln!("{test}: skipped (root: {root}, missing: {missing:?}; {hint})");
        return false;
    }
    true
}

pub struct Lab {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub children: Vec<Child>,
}

impl Lab {
    pub fn up(tag: &str, queues: u32) -> Lab {
        // Short and unique per process: interface names are limited to 15 characters.
        let prefix = format!("u{tag}{}", std::process::id() % 10000);
        let out = Command::new("bash")
            .arg(LAB)
            .arg("up")
            .env("LAB_PREFIX", &prefix)
            .env("LAB_QUEUES", queues.to_string())
            .output()
            .expect("run lab.sh");
        let lab = Lab {
            prefix,
            dir: tempfile::tempdir().expect("tempdir"),
            children: Vec::new(),
        };
        assert!(
            out.status.success(),
            "lab.sh up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    pub fn iface(&self, which: char) -> String {
        format!("{}{which}", self.prefix)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self, role: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(role)]).args(args);
        c
    }

    pub fn run(&self, role: &str, args: &[&str]) -> Output {
        self.cmd(role, args).output().expect("spawn")
    }

    pub fn spawn(&mut self, role: &str, args: &[&str]) -> usize {
        let child = self
            .cmd(role, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Starts the datapath in the appliance namespace and waits for READY.
    pub fn appliance(&mut self, extra: &[&str]) -> Appliance {
        let a = self.iface('a');
        let b = self.iface('b');
        let mut args = vec![DIAG, "inline", "--a", &a, "--b", &b];
        args.extend_from_slice(extra);
        let mut child = self
            .cmd("appliance", &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unmask-diag");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut prog_id = None;
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            if let Some(rest) = line.strip_prefix("READY prog_id=") {
                prog_id = rest.trim().parse().ok();
                break;
            }
        }
        if prog_id.is_none() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            panic!("datapath did not start: {err}");
        }
        Appliance {
            child,
            lines,
            prog_id: prog_id.unwrap_or(0),
        }
    }

    /// A python HTTP server on the server, serving `dir` on `port` (IPv4 and IPv6), ready.
    pub fn http_server(&mut self, dir: &Path, port: u16) {
        let dir = dir.to_string_lossy().into_owned();
        let port_s = port.to_string();
        self.spawn(
            "server",
            &[
                "python3",
                "-m",
                "http.server",
                &port_s,
                "--bind",
                "::",
                "--directory",
                &dir,
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = self.run("server", &["ss", "-Hltn", &format!("sport = :{port}")]);
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("http server on {port} did not start");
    }

    pub fn curl(&self, url: &str, out: &Path, extra: &[&str]) -> Output {
        let out_s = out.to_string_lossy().into_owned();
        let mut args = vec!["curl", "-sf", "-o", &out_s];
        args.extend_from_slice(extra);
        args.push(url);
        self.run("client", &args)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("bash")
            .arg(LAB)
            .arg("down")
            .env("LAB_PREFIX", &self.prefix)
            .output();
    }
}

pub struct Appliance {
    pub child: Child,
    pub lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    pub prog_id: u32,
}

impl Appliance {
    /// SIGTERM, wait, and the JSON report.
    pub fn stop(mut self) -> serde_json::Value {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "datapath exited with {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "datapath did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut last = String::new();
        for line in self.lines.by_ref() {
            let line = line.unwrap_or_default();
            if line.starts_with('{') {
                last = line;
            }
        }
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("report {last:?}: {e}"))
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sha(path: &Path) -> [u8; 32] {
    let bytes = std::fs::read(path).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

pub fn random_file(path: &Path, len: usize) {
    // A cheap xorshift stream: incompressible enough that corruption cannot hide.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    std::fs::write(path, v).expect("write blob");
}

pub fn u64_at(v: &serde_json::Value, ptr: &str) -> u64 {
    v.pointer(ptr)
        .and_then(|x| x.as_u64())
        .unwrap_or_else(|| panic!("{ptr} missing in {v}"))
}

pub fn sum_workers(v: &serde_json::Value, field: &str) -> u64 {
    v["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["stats"][field].as_u64().unwrap_or(0))
        .sum()
}

/// Reason slot of the XDP counters (order of `enum unmask_reason`).
pub const BLOCKED: usize = 2;
pub const BYPASSED: usize = 3;
pub const TO_SOCKET: usize = 4;
pub const NON_TCP: usize = 1;

pub fn xdp_reason(v: &serde_json::Value, reason: usize) -> u64 {
    u64_at(v, &format!("/xdp/reasons/{reason}/packets"))
}

pub fn ping(lab: &Lab, addr: &str) -> bool {
    // The first packets may wait for neighbour resolution: a few tries.
    (0..3).any(|_| {
        lab.run("client", &["ping", "-c", "2", "-i", "0.2", "-W", "2", addr])
            .status
            .success()
    })
}

pub fn attached(lab: &Lab, which: char) -> String {
    let out = lab.run("appliance", &[DIAG, "show", "--iface", &lab.iface(which)]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub const UNMASK: &str = env!("CARGO_BIN_EXE_unmask");
pub const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/peer.py");

/// `unmask run` in the appliance namespace.
pub struct Unmask {
    pub child: Child,
    pub report: PathBuf,
    pub eve: PathBuf,
    pub ready: String,
    /// stderr lines after READY.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Lab {
    /// A config for this lab's ports (configs/lab.toml with the prefix's port names).
    pub fn config(&self, mode: &str, topology: &str, workers: u32, fail: &str) -> PathBuf {
        let ports = match topology {
            "tap" => format!("[\"{}\"]", self.iface('a')),
            _ => format!("[\"{}\", \"{}\"]", self.iface('a'), self.iface('b')),
        };
        // A socket per lab: tests run side by side.
        let control = self.path("control.sock");
        let text = format!(
            "[verdict]\nmode = \"{mode}\"\nfail_mode = \"{fail}\"\n\n[live]\ntopology = \"{topology}\"\nports = {ports}\nworkers = {workers}\ncontrol_socket = \"{}\"\n",
            control.display()
        );
        let path = self.path(&format!("unmask-{mode}-{topology}-{workers}.toml"));
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Starts `unmask run` and waits until it says READY on stderr.
    pub fn unmask(&mut self, config: &Path) -> Unmask {
        self.unmask_under(&[], config)
    }

    /// [`Lab::unmask`] through a wrapper command (`setpriv ...`), which must exec it.
    pub fn unmask_under(&mut self, wrapper: &[&str], config: &Path) -> Unmask {
        let report = self.path("report.json");
        let eve = self.path("eve.json");
        let _ = std::fs::remove_file(&report);
        let _ = std::fs::remove_file(&eve);
        let (c, e, r) = (
            config.to_string_lossy().into_owned(),
            eve.to_string_lossy().into_owned(),
            report.to_string_lossy().into_owned(),
        );
        let mut argv: Vec<&str> = wrapper.to_vec();
        argv.extend_from_slice(&[UNMASK, "run", "--config", &c, "--eve", &e, "--report", &r]);
        let mut child = self
            .cmd("appliance", &argv)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unmask run");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut ready = None;
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            if let Some(rest) = line.strip_prefix("unmask: READY ") {
                ready = Some(rest.to_string());
                break;
            }
            seen.push(line);
        }
        let Some(ready) = ready else {
            let _ = child.wait();
            panic!("unmask run did not start: {}", seen.join("\n"));
        };
        // Keep draining stderr so the child never blocks on a full pipe; keep it for tests
        // that read what the running appliance says.
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Unmask {
            child,
            report,
            eve,
            ready,
            log,
        }
    }

    /// A byte-counting sink on the server; returns the file its count lands in.
    pub fn sink(&mut self, listen: &str, extra: &[&str]) -> PathBuf {
        let out = self.path(&format!(
            "sink-{}.txt",
            listen.replace([':', '[', ']'], "_")
        ));
        let ready = self.path(&format!(
            "ready-{}.txt",
            listen.replace([':', '[', ']'], "_")
        ));
        // A sink may listen again where an earlier one ended: never read its files.
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&ready);
        let (o, r) = (
            out.to_string_lossy().into_owned(),
            ready.to_string_lossy().into_owned(),
        );
        let mut args = vec![
            "python3", PEER, "sink", "--listen", listen, "--out", &o, "--ready", &r,
        ];
        args.extend_from_slice(extra);
        self.spawn("server", &args);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "sink on {listen} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        out
    }

    /// Runs the sending peer on the client to completion.
    pub fn send(&self, to: &str, extra: &[&str]) -> Output {
        let mut args = vec!["python3", PEER, "send", "--to", to];
        args.extend_from_slice(extra);
        self.run("client", &args)
    }
}

/// Reads a peer's byte count once it has written it.
pub fn count(path: &Path) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if let Ok(n) = s.trim().parse() {
                return n;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Unmask {
    /// SIGTERM, wait, and the run report.
    pub fn stop(mut self) -> serde_json::Value {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "unmask run exited with {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "unmask run did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = std::fs::read_to_string(&self.report).expect("run report");
        serde_json::from_str(&text).expect("report is JSON")
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for a stderr line containing `needle` (after READY) and returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "unmask never said {needle:?}; it said: {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// EVE records written so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        eve_records(&self.eve)
    }
}

/// The EVE records in a file (after a stop, every record the writer took is in it).
pub fn eve_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

impl Drop for Unmask {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finding names alerted on flows to `port`, sorted and deduplicated.
pub fn findings_to_port(records: &[serde_json::Value], port: u16) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .filter(|r| r["event_type"] == "alert" && (r["dest_port"] == port || r["src_port"] == port))
        .map(|r| r["unmask"]["finding"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Self-made PKI for TLS peers: a CA and a leaf for `name`, in `dir`. Returns (ca, cert, key).
pub fn make_certs(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(f);
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |p: &PathBuf| p.to_string_lossy().into_owned();
    let (ca_key, ca, key, csr, cert, ext) = (
        p("ca.key"),
        p("ca.pem"),
        p("leaf.key"),
        p("leaf.csr"),
        p("leaf.pem"),
        p("ext.cnf"),
    );
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &s(&ca_key),
        "-out",
        &s(&ca),
        "-days",
        "30",
        "-subj",
        "/O=Unmask Lab CA/CN=Unmask Lab Root",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
        "-subj",
        &format!("/O=Unmask Lab/CN={name}"),
    ]);
    std::fs::write(
        &ext,
        format!(
            "subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&cert),
    ]);
    (ca, cert, key)
}

/// The ids of the maps program `prog_id` uses (bpftool's `map_ids`), empty without bpftool.
pub fn prog_map_ids(prog_id: &str) -> Vec<String> {
    let Ok(out) = Command::new("bpftool")
        .args(["prog", "show", "id", prog_id])
        .output()
    else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ids = text
        .split("map_ids ")
        .nth(1)
        .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default();
    ids.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Of `ids`, the maps that still exist after up to 5 s (map freeing is deferred in the
/// kernel). Only these ids are looked at: other programs on the machine (other tests, other
/// instances) may own maps of the same names.
pub fn maps_still_alive(ids: &[String]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut alive: Vec<String> = ids.to_vec();
    while !alive.is_empty() && Instant::now() < deadline {
        alive.retain(|id| {
            Command::new("bpftool")
                .args(["map", "show", "id", id])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    alive
}
