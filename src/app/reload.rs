//! Hot reload: SIGHUP or `unmask ctl reload` re-reads the config file and the fingerprint
//! lists it names, and puts the new checks and verdict mode in force in every worker without
//! stopping the datapath.
//!
//! - What reloads: `[detect]` (every check, its tunables, service profiles, fingerprint list
//!   files) and `verdict.mode`. Everything else sizes memory, binds sockets or attaches the
//!   program; a change there is reported as needing a restart and not applied.
//! - A config that does not load, or a list that does not read, is rejected with the loader's
//!   message (file, key, value, what is accepted) and the policy in force stays.
//! - The checks are built once, on the control thread, and handed to each worker as an
//!   `Arc<Detector>` through a bounded channel the worker polls between batches: no lock and
//!   no allocation on the packet path. The worker sends the detector it replaces back, so the
//!   old one is freed here, not between two batches. Flow state, stream buffers and verdicts
//!   already given are untouched: a blocked flow stays blocked, a flow under inspection goes on
//!   with the new checks from its next packet.

use crate::output::eve::{Reopen, ReopenOutcome};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::config::Config;
use crate::detect::Detector;
use crate::engine::Engine;
use crate::output::metrics::Hub;
use crate::verdict::Mode;

/// A policy on its way to a worker.
struct Update {
    generation: u64,
    detector: Arc<Detector>,
    mode: Mode,
}

/// A worker's answer: the generation it now runs, and what it replaced.
struct Retired {
    generation: u64,
    _old: Arc<Detector>,
}

/// A worker's end: checked between batches.
#[derive(Clone)]
pub struct PolicyInbox {
    updates: Receiver<Update>,
    retired: Sender<Retired>,
}

impl PolicyInbox {
    /// Puts a pending policy in force. One `try_recv` when there is none.
    #[inline]
    pub fn apply_pending(&self, engine: &mut Engine) {
        match self.updates.try_recv() {
            Ok(u) => {
                let old = engine.apply_policy(u.detector, u.mode);
                // The channel has room for every worker's answer to the one update in flight;
                // if it were full the old detector would simply be freed here.
                let _ = self.retired.try_send(Retired {
                    generation: u.generation,
                    _old: old,
                });
            }
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => {}
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Applied {
        generation: u64,
        config: String,
        mode: &'static str,
        /// `[detect]` differs from the one in force before (the checks are rebuilt anyway,
        /// so that edited list files are read again).
        detect_changed: bool,
        /// Workers that confirmed the new policy.
        workers: usize,
        /// Workers that had not confirmed it within the wait (they take it at their next batch).
        pending: usize,
        /// Keys that differ from the running config but only take effect after a restart.
        restart_required: Vec<String>,
    },
    Rejected {
        config: String,
        error: String,
    },
}

impl Outcome {
    pub fn applied(&self) -> bool {
        matches!(self, Outcome::Applied { .. })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Applied {
                generation,
                config,
                mode,
                detect_changed,
                workers,
                pending,
                restart_required,
            } => {
                write!(
                    f,
                    "reload {generation} applied from {config}: mode {mode}, checks {}, {workers} worker(s) switched",
                    if *detect_changed { "changed" } else { "unchanged (lists re-read)" }
                )?;
                if *pending > 0 {
                    write!(f, ", {pending} still to switch at their next batch")?;
                }
                if !restart_required.is_empty() {
                    write!(
                        f,
                        "; not applied, needs a restart: {}",
                        restart_required.join(", ")
                    )?;
                }
                Ok(())
            }
            Outcome::Rejected { config, error } => write!(
                f,
                "reload of {config} rejected, the config in force stays: {error}"
            ),
        }
    }
}

/// The control side: owns the config in force and the workers' channels.
pub struct Reloader {
    path: PathBuf,
    in_force: Config,
    generation: u64,
    workers: Vec<Sender<Update>>,
    retired: Receiver<Retired>,
    hub: Option<Arc<Hub>>,
    mode_override: Option<Mode>,
    /// The EVE writer's reopen handle (log rotation), once the writer runs.
    reopen: Option<Reopen>,
}

/// How long a reopen waits for the EVE writer, which looks for requests every 20 ms.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// How long a reload waits for the workers to confirm. They poll at least every few
/// milliseconds, so this only runs out for a worker stuck elsewhere.
const CONFIRM_WAIT: Duration = Duration::from_secs(2);

impl Reloader {
    /// The reloader and one inbox per worker (index = worker).
    pub fn new(
        path: &Path,
        in_force: &Config,
        workers: usize,
        hub: Option<Arc<Hub>>,
    ) -> (Reloader, Vec<PolicyInbox>) {
        let (retired_tx, retired) = crossbeam_channel::bounded(workers.max(1) * 2);
        let mut senders = Vec::with_capacity(workers);
        let mut inboxes = Vec::with_capacity(workers);
        for _ in 0..workers {
            // One update in flight per worker: a reload waits for the last one's answers.
            let (tx, rx) = crossbeam_channel::bounded(1);
            senders.push(tx);
            inboxes.push(PolicyInbox {
                updates: rx,
                retired: retired_tx.clone(),
            });
        }
        let reloader = Reloader {
            path: path.to_path_buf(),
            in_force: in_force.clone(),
            generation: 1,
            workers: senders,
            retired,
            hub,
            mode_override: None,
            reopen: None,
        };
        (reloader, inboxes)
    }

    /// Lets SIGHUP and `unmask ctl reopen` reopen the EVE file.
    pub fn set_reopen(&mut self, reopen: Reopen) {
        self.reopen = Some(reopen);
    }

    /// Reopens the EVE file (after logrotate moved it) and says what became of it.
    pub fn reopen(&self) -> (bool, String) {
        let Some(r) = &self.reopen else {
            return (false, "no EVE writer to reopen".into());
        };
        match r.request(REOPEN_WAIT) {
            ReopenOutcome::Reopened(n) => (true, format!("EVE file reopened ({n} so far)")),
            ReopenOutcome::NotAFile => (
                true,
                "EVE goes to standard output: nothing to reopen".into(),
            ),
            ReopenOutcome::Failed => (
                false,
                "reopening the EVE file failed; records go on to the file already open".into(),
            ),
            ReopenOutcome::Pending => (
                false,
                format!("the EVE writer did not reopen within {REOPEN_WAIT:?}"),
            ),
        }
    }

    /// A verdict mode from the command line, which outranks the file's on every reload.
    pub fn set_mode_override(&mut self, mode: Option<Mode>) {
        self.mode_override = mode;
    }

    /// The generation in force (1 at start, +1 per applied reload).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn in_force(&self) -> &Config {
        &self.in_force
    }

    /// Re-reads the config and, when it is good, hands the new policy to every worker.
    pub fn reload(&mut self) -> Outcome {
        let shown = self.path.display().to_string();
        let rejected = |error: String| Outcome::Rejected {
            config: shown.clone(),
            error,
        };
        let mut new = match Config::load(&self.path) {
            Ok(c) => c,
            Err(e) => return rejected(e.to_string()),
        };
        if let Some(m) = self.mode_override {
            new.verdict.mode = m;
        }
        let detector = match Detector::try_new(&new.detect, &shown) {
            Ok(d) => Arc::new(d),
            Err(e) => return rejected(e.to_string()),
        };
        let restart_required = restart_only_changes(&self.in_force, &new);
        let detect_changed = new.detect != self.in_force.detect;
        let mode = new.verdict.mode;

        // Answers to an earlier reload that came in after its wait ended.
        while self.retired.try_recv().is_ok() {}
        let generation = self.generation + 1;
        let mut sent = 0;
        for tx in &self.workers {
            let update = Update {
                generation,
                detector: Arc::clone(&detector),
                mode,
            };
            // Full: that worker has not taken the previous update yet; it will find this one
            // is newer only after it takes that, so wait for room (bounded by CONFIRM_WAIT).
            if tx.send_timeout(update, CONFIRM_WAIT).is_ok() {
                sent += 1;
            }
        }
        let mut confirmed = 0;
        let deadline = Instant::now() + CONFIRM_WAIT;
        while confirmed < sent {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.retired.recv_timeout(left) {
                Ok(r) if r.generation == generation => confirmed += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.generation = generation;
        self.in_force.detect = new.detect;
        self.in_force.verdict.mode = mode;
        if let Some(hub) = &self.hub {
            hub.count_config_reload(mode);
        }
        Outcome::Applied {
            generation,
            config: shown,
            mode: mode.name(),
            detect_changed,
            workers: confirmed,
            pending: self.workers.len() - confirmed,
            restart_required,
        }
    }
}

/// Dotted keys outside `[detect]` and `verdict.mode` whose values differ.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<String> {
    let (Ok(a), Ok(b)) = (toml::Value::try_from(old), toml::Value::try_from(new)) else {
        return vec!["(config not comparable)".into()];
    };
    let mut out = Vec::new();
    diff_keys("", &a, &b, &mut out);
    out.retain(|k| !(k == "detect" || k.starts_with("detect.") || k == "verdict.mode"));
    out
}

fn diff_keys(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(ta), toml::Value::Table(tb)) => {
            let mut keys: Vec<&String> = ta.keys().chain(tb.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (ta.get(k), tb.get(k)) {
                    (Some(x), Some(y)) => diff_keys(&path, x, y, out),
                    _ => out.push(path),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// Binds the control socket, creating its directory (0700) when missing and replacing a stale
/// socket file no process answers on. An empty path: no socket.
pub fn bind_control_socket(path: &str) -> Result<Option<UnixListener>, String> {
    if path.is_empty() {
        return Ok(None);
    }
    let p = Path::new(path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
    }
    if p.exists() {
        if UnixStream::connect(p).is_ok() {
            return Err(format!(
                "{path}: another unmask answers on this control socket; stop it, or set live.control_socket to another path"
            ));
        }
        std::fs::remove_file(p).map_err(|e| format!("removing stale socket {path}: {e}"))?;
    }
    let listener = UnixListener::bind(p).map_err(|e| format!("binding {path}: {e}"))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // Reload is an administrative act: owner only.
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600));
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(Some(listener))
}

/// The control thread: reloads on SIGHUP and answers the control socket until `stop`.
/// Every outcome is said on stderr, whoever asked.
pub fn serve(
    mut reloader: Reloader,
    listener: Option<UnixListener>,
    sighup: &AtomicBool,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        if sighup.swap(false, Ordering::Relaxed) {
            // SIGHUP is what logrotate's postrotate sends most often: reopen, then reload.
            let (_, reopened) = reloader.reopen();
            eprintln!("unmask: SIGHUP: {reopened}");
            let outcome = reloader.reload();
            eprintln!("unmask: SIGHUP: {outcome}");
        }
        if let Some(l) = &listener {
            while let Ok((stream, _)) = l.accept() {
                answer(&mut reloader, stream);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn answer(reloader: &mut Reloader, stream: UnixStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let reply = match line.trim() {
        "reload" => {
            let outcome = reloader.reload();
            eprintln!("unmask: control: {outcome}");
            serde_json::json!({
                "ok": outcome.applied(),
                "message": outcome.to_string(),
                "outcome": outcome,
            })
        }
        "reopen" => {
            let (ok, message) = reloader.reopen();
            eprintln!("unmask: control: {message}");
            serde_json::json!({
                "ok": ok,
                "message": message,
                "reopened": reloader.reopen.as_ref().map_or(0, Reopen::count),
            })
        }
        "status" => serde_json::json!({
            "ok": true,
            "pid": std::process::id(),
            "generation": reloader.generation(),
            "config": reloader.path.display().to_string(),
            "mode": reloader.in_force().verdict.mode.name(),
        }),
        other => serde_json::json!({
            "ok": false,
            "message": format!("unknown command {other:?}; accepted: reload, reopen, status"),
        }),
    };
    let mut w = &stream;
    let _ = writeln!(w, "{reply}");
}

/// The client side of `unmask ctl`: sends one command, returns the reply.
pub fn request(socket: &str, command: &str) -> Result<serde_json::Value, String> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        format!("{socket}: {e}; is `unmask run` running with live.control_socket = {socket:?}?")
    })?;
    // A reload waits up to CONFIRM_WAIT for the workers, twice at worst.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = &stream;
    writeln!(w, "{command}").map_err(|e| format!("{socket}: {e}"))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| format!("{socket}: no answer: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("{socket}: unreadable answer {line:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_changes_name_the_keys_outside_detect_and_mode() {
        let a = Config::default();
        let mut b = a.clone();
        b.flow.capacity = 4096;
        b.verdict.mode = Mode::Block;
        b.detect.sni.enabled = !b.detect.sni.enabled;
        b.live.ports = vec!["eth0".into(), "eth1".into()];
        assert_eq!(
            restart_only_changes(&a, &b),
            vec!["flow.capacity".to_string(), "live.ports".to_string()]
        );
        assert!(restart_only_changes(&a, &a).is_empty());
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_reload_reaches_every_inbox_and_a_bad_config_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "u.toml", "[verdict]\nmode = \"monitor\"\n");
        let start = Config::load(&path).unwrap();
        let (mut reloader, inboxes) = Reloader::new(&path, &start, 2, None);
        let mut engines: Vec<Engine> = (0..2)
            .map(|i| {
                Engine::new(
                    &start.engine(),
                    crate::engine::EngineOptions {
                        worker: i,
                        packet_numbers: false,
                    },
                    None,
                )
            })
            .collect();
        // Workers answer from their own threads while the reload waits for them.
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for (inbox, engine) in inboxes.iter().zip(engines.iter_mut()) {
                let stop = &stop;
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        inbox.apply_pending(engine);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
            }
            write(dir.path(), "u.toml", "[verdict]\nmode = \"block\"\n");
            let outcome = reloader.reload();
            assert!(outcome.applied(), "{outcome}");
            assert!(matches!(
                outcome,
                Outcome::Applied {
                    generation: 2,
                    workers: 2,
                    pending: 0,
                    ..
                }
            ));

            write(
                dir.path(),
                "u.toml",
                "[verdict]\nmode = \"monitor\"\n[detect.sni]\nip_literal = \"x\"\n",
            );
            let outcome = reloader.reload();
            let text = outcome.to_string();
            assert!(!outcome.applied());
            assert!(
                text.contains("u.toml") && text.contains("detect.sni"),
                "{text}"
            );
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(reloader.generation(), 2);
        assert_eq!(reloader.in_force().verdict.mode, Mode::Block);
        for e in &engines {
            assert_eq!(e.mode(), Mode::Block);
        }
    }
}
