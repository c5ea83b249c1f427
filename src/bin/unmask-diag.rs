//! Datapath diagnostics: run the live datapath with a trivial handler, the raw AF_XDP loops
//! used for benchmarks, and an AF_XDP traffic generator.
//!
//!   unmask-diag inline --a IF --b IF [--handler forward|drop|block-port:N] [--workers N] ...
//!   unmask-diag tap --iface IF [--handler ...]
//!   unmask-diag rx-drop --iface IF [--workers N] [--seconds S]
//!   unmask-diag forward --a IF --b IF [--workers N] [--seconds S]
//!   unmask-diag gen --iface IF [--seconds S] [--flows N] [--size BYTES]
//!   unmask-diag show --iface IF
//!
//! Live modes print `READY` on stdout once every socket is registered, and a JSON report on
//! stdout when they stop (SIGINT / SIGTERM, or after --seconds).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use unmask::capture::{Action, Frame, Timestamp};
use unmask::datapath::bpf::{self, Topology};
use unmask::datapath::diag::{BlockPort, BypassPort, DropAll, ForwardAll};
use unmask::datapath::live::{self, LiveSetup, LiveStats};
use unmask::datapath::xsk::{self, PollMode, ZeroCopy};
use unmask::verdict::{FailMode, FlowControl, FrameHandler};

#[derive(Parser)]
#[command(name = "unmask-diag", about = "unmask datapath diagnostics")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Workers (= queues used on every port).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    seconds: Option<f64>,
    #[arg(long, default_value_t = 64)]
    batch: u32,
    /// poll or busy-poll.
    #[arg(long, default_value = "poll")]
    poll: String,
    /// auto, on or off.
    #[arg(long, default_value = "auto")]
    zero_copy: String,
    /// Do not pin workers to cores.
    #[arg(long)]
    no_pin: bool,
    #[arg(long, default_value_t = 0)]
    first_core: usize,
    /// Print a rate line on stderr every second.
    #[arg(long)]
    progress: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// The inline datapath with a trivial handler.
    Inline {
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
        /// forward, drop, block-port:N or bypass-port:N.
        #[arg(long, default_value = "forward")]
        handler: String,
        /// open or closed.
        #[arg(long, default_value = "open")]
        fail: String,
        /// Block entry lifetime in seconds (0 = forever).
        #[arg(long, default_value_t = 600)]
        block_ttl: u64,
        #[command(flatten)]
        common: Common,
    },
    /// The tap datapath (one mirror port, nothing forwarded) with a trivial handler.
    Tap {
        #[arg(long)]
        iface: String,
        /// forward, drop, block-port:N or bypass-port:N.
        #[arg(long, default_value = "forward")]
        handler: String,
        #[command(flatten)]
        common: Common,
    },
    /// Raw AF_XDP receive-and-drop loop on one port (every frame steered to the socket).
    RxDrop {
        #[arg(long)]
        iface: String,
        #[command(flatten)]
        common: Common,
    },
    /// Raw AF_XDP forward loop A <-> B (every frame steered to the sockets, no parsing).
    Forward {
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
        #[command(flatten)]
        common: Common,
    },
    /// AF_XDP TX generator of small TCP frames over many flows.
    Gen {
        #[arg(long)]
        iface: String,
        #[arg(long, default_value_t = 0)]
        queue: u32,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 64)]
        flows: u16,
        /// Frame size without FCS (at least 54).
        #[arg(long, default_value_t = 60)]
        size: usize,
        /// Destination MAC (default broadcast).
        #[arg(long)]
        dst_mac: Option<String>,
        /// Repeat each flow's segment instead of moving its sequence number on (a flood of
        /// retransmissions rather than a stream of tiny segments).
        #[arg(long)]
        repeat_seq: bool,
        #[arg(long)]
        core: Option<usize>,
    },
    /// The XDP program attached to an interface.
    Show {
        #[arg(long)]
        iface: String,
    },
}

fn common_setup(ports: Vec<String>, topology: Topology, c: &Common) -> Result<LiveSetup> {
    let mut s = LiveSetup::new(ports, topology);
    s.workers = c.workers;
    s.xsk.batch = c.batch;
    s.xsk.poll_mode = match c.poll.as_str() {
        "poll" => PollMode::Poll,
        "busy-poll" => PollMode::BusyPoll,
        other => bail!("--poll {other}: expected poll or busy-poll"),
    };
    s.xsk.zero_copy = match c.zero_copy.as_str() {
        "auto" => ZeroCopy::Auto,
        "on" => ZeroCopy::On,
        "off" => ZeroCopy::Off,
        other => bail!("--zero-copy {other}: expected auto, on or off"),
    };
    s.xsk.pin_cores = !c.no_pin;
    s.xsk.first_core = c.first_core;
    Ok(s)
}

/// One of the trivial handlers, chosen at run time.
// One per worker, built once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Handler {
    Forward(ForwardAll),
    Drop(DropAll),
    Block(BlockPort),
    Bypass(BypassPort),
}

impl FrameHandler for Handler {
    fn handle(&mut self, f: &Frame<'_>) -> Action {
        match self {
            Handler::Forward(h) => h.handle(f),
            Handler::Drop(h) => h.handle(f),
            Handler::Block(h) => h.handle(f),
            Handler::Bypass(h) => h.handle(f),
        }
    }
    fn after_batch(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        match self {
            Handler::Block(h) => h.after_batch(now, ctl),
            Handler::Bypass(h) => h.after_batch(now, ctl),
            _ => {}
        }
    }
    fn finish(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        match self {
            Handler::Block(h) => h.finish(now, ctl),
            Handler::Bypass(h) => h.finish(now, ctl),
            _ => {}
        }
    }
}

fn parse_handler(s: &str) -> Result<Handler> {
    Ok(match s {
        "forward" => Handler::Forward(ForwardAll),
        "drop" => Handler::Drop(DropAll),
        _ => {
            if let Some(p) = s.strip_prefix("block-port:") {
                Handler::Block(BlockPort::new(p.parse().context("block-port:N")?))
            } else if let Some(p) = s.strip_prefix("bypass-port:") {
                Handler::Bypass(BypassPort::new(p.parse().context("bypass-port:N")?))
            } else {
                bail!("--handler {s}: expected forward, drop, block-port:N or bypass-port:N")
            }
        }
    })
}

fn live_run(setup: &LiveSetup, handler: &str, common: &Common) -> Result<()> {
    parse_handler(handler)?;
    let stop = live::stop_on_signals();
    let deadline = common.seconds.map(Duration::from_secs_f64);
    let progress = common.progress;
    let report = std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<LiveStats>();
        let timer = scope.spawn(move || {
            let Ok(stats) = ready_rx.recv() else { return };
            let start = Instant::now();
            let mut last = (start, 0u64);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = Instant::now();
                if progress && now.duration_since(last.0) >= Duration::from_secs(1) {
                    let rx: u64 = stats.iter().map(|s| s.snapshot().0.rx).sum();
                    let dt = now.duration_since(last.0).as_secs_f64();
                    eprintln!("rx {:.0} pps", (rx - last.1) as f64 / dt);
                    last = (now, rx);
                }
                if deadline.is_some_and(|d| now.duration_since(start) >= d) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        });
        let r = live::run(
            setup,
            |_| parse_handler(handler).unwrap_or(Handler::Forward(ForwardAll)),
            stop,
            |stats, prog| {
                let _ = ready_tx.send(stats.clone());
                println!("READY prog_id={}", prog.id());
                let _ = std::io::stdout().flush();
            },
        );
        // Unblock the timer if the run failed before it started.
        drop(ready_tx);
        stop.store(true, Ordering::Relaxed);
        let _ = timer.join();
        r
    })?;
    let rx: u64 = report.workers.iter().map(|w| w.stats.rx).sum();
    let tx: u64 = report.workers.iter().map(|w| w.stats.tx).sum();
    eprintln!(
        "{:?} mode, {:.2} s: rx {rx} ({:.0} pps), tx {tx} ({:.0} pps)",
        report.bind_mode,
        report.seconds,
        rx as f64 / report.seconds.max(1e-9),
        tx as f64 / report.seconds.max(1e-9)
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        bail!("MAC {s}: expected 6 hex bytes");
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).with_context(|| format!("MAC {s}"))?;
    }
    Ok(mac)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Inline {
            a,
            b,
            handler,
            fail,
            block_ttl,
            common,
        } => {
            let mut setup = common_setup(vec![a, b], Topology::Inline, &common)?;
            setup.fail = match fail.as_str() {
                "open" => FailMode::FailOpen,
                "closed" => FailMode::FailClosed,
                other => bail!("--fail {other}: expected open or closed"),
            };
            setup.xsk.block_ttl_secs = block_ttl;
            live_run(&setup, &handler, &common)
        }
        Cmd::Tap {
            iface,
            handler,
            common,
        } => {
            let setup = common_setup(vec![iface], Topology::Tap, &common)?;
            live_run(&setup, &handler, &common)
        }
        Cmd::RxDrop { iface, common } => {
            let mut setup = common_setup(vec![iface], Topology::Tap, &common)?;
            setup.steer_all = true;
            live_run(&setup, "drop", &common)
        }
        Cmd::Forward { a, b, common } => {
            let mut setup = common_setup(vec![a, b], Topology::Inline, &common)?;
            setup.steer_all = true;
            live_run(&setup, "forward", &common)
        }
        Cmd::Gen {
            iface,
            queue,
            seconds,
            flows,
            size,
            dst_mac,
            repeat_seq,
            core,
        } => {
            let dst = match dst_mac {
                Some(m) => parse_mac(&m)?,
                None => [0xff; 6],
            };
            if let Some(c) = core {
                core_affinity::set_for_current(core_affinity::CoreId { id: c });
            }
            let frames = xsk::test_frames(flows.max(1), size.max(54), dst);
            let stop = live::stop_on_signals();
            let stop_at = Instant::now() + Duration::from_secs_f64(seconds);
            let seq = if repeat_seq {
                xsk::GenSeq::Repeat
            } else {
                xsk::GenSeq::Stream
            };
            let r = xsk::generate(&iface, queue, &frames, seq, &|| {
                stop.load(Ordering::Relaxed) || Instant::now() >= stop_at
            })?;
            eprintln!(
                "sent {} frames in {:.2} s: {:.0} pps ({} kicks)",
                r.sent,
                r.seconds,
                r.sent as f64 / r.seconds.max(1e-9),
                r.kicks
            );
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Cmd::Show { iface } => {
            let idx = bpf::ifindex(&iface)?;
            match bpf::attached_program(idx)? {
                Some((id, name)) => println!("{iface}: xdp id {id} name {name}"),
                None => println!("{iface}: no xdp program"),
            }
            Ok(())
        }
    }
}
