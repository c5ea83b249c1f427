//! The `unmask` command line.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use unmask::app::replay::{self, ReplayOptions};
use unmask::config::Config;
use unmask::output::eve::EveTarget;
use unmask::output::metrics::{Exporter, Hub, HubOptions, RunMode};
use unmask::verdict::Mode;

#[derive(Parser)]
#[command(
    name = "unmask",
    version,
    about = "Unmask traffic that impersonates another protocol or service (MITRE T1001.003)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine over capture files (pcap or pcapng) and write EVE records.
    Replay {
        /// Config file (TOML); built-in defaults when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override verdict.mode: monitor (alert only) or block (also report what would drop).
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// Where EVE records go: a file, or - for standard output (overrides output.eve).
        #[arg(long)]
        eve: Option<String>,
        /// Never draw a progress bar.
        #[arg(long)]
        no_progress: bool,
        /// Serve Prometheus metrics (/metrics, /healthz, /readyz) on IP:PORT during the replay
        /// (overrides metrics.listen and metrics.enabled).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
        /// Keep serving metrics this many seconds after the replay ends, so a scraper sees the
        /// final values.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        metrics_linger: u64,
        /// Keep the first-seen baseline in this directory (overrides baseline.state_dir): a
        /// capture replayed twice gives first_seen records only the first time.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Capture files, read in order as one stream.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run the appliance on the ports in [live] until SIGINT/SIGTERM.
    Run {
        /// Config file (TOML); [live] names the ports.
        #[arg(long, short)]
        config: PathBuf,
        /// Override verdict.mode (reloads keep the override).
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// Where EVE records go (overrides output.eve).
        #[arg(long)]
        eve: Option<String>,
        /// Also write the end-of-run report as JSON to this file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Serve Prometheus metrics (/metrics, /healthz, /readyz) on IP:PORT (overrides
        /// metrics.listen and metrics.enabled).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
    },
    /// Write the project's fixture capture (benign flows and impersonations) as a pcap.
    Fixtures {
        #[arg(long, short)]
        out: PathBuf,
        /// Write a flood instead: this many 64-byte frames over random 5-tuples with the fixture
        /// flows spread through them (their list goes to OUT with extension .flows.tsv).
        #[arg(long, value_name = "PACKETS")]
        flood: Option<u64>,
        /// With --flood: only the fixture flows, at the times they have in the flood.
        #[arg(long, requires = "flood")]
        embedded_only: bool,
        /// With --flood: also print the engine's memory bound under this config.
        #[arg(long, short, requires = "flood")]
        config: Option<PathBuf>,
    },
    /// Talk to a running `unmask run` over its control socket: `reload` re-reads the config
    /// and lists (as SIGHUP does) and says what changed or why it was rejected; `status` says
    /// which config generation and verdict mode are in force.
    Ctl {
        /// The control socket (live.control_socket of the running config).
        #[arg(long, default_value = "/run/unmask/control.sock")]
        socket: String,
        #[arg(value_enum)]
        command: CtlCommand,
    },
    /// Read or write the first-seen baseline store (stop the process using it first).
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },
    /// Validate a config file; print the effective config with --print.
    CheckConfig {
        file: PathBuf,
        #[arg(long)]
        print: bool,
    },
}

#[derive(Subcommand)]
enum BaselineCommand {
    /// Every pair as JSON lines: type, host, port, value, first_seen, last_seen, count.
    Export {
        /// The state directory (replay --state, baseline.state_dir).
        #[arg(long)]
        state: PathBuf,
        /// Write here instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Merge an export into the store (earliest first seen, latest last seen, larger count).
    Import {
        #[arg(long)]
        state: PathBuf,
        /// JSON lines as `export` writes them.
        file: PathBuf,
    },
    /// Pairs per type, learning start, latest time seen, file size.
    Stats {
        #[arg(long)]
        state: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CtlCommand {
    /// Re-read the config and the lists it names; put the new policy in force.
    Reload,
    /// Reopen the EVE file (logrotate's postrotate; SIGHUP does it too, with a reload).
    Reopen,
    /// Generation and mode in force.
    Status,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Monitor,
    Block,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Monitor => Mode::Monitor,
            ModeArg::Block => Mode::Block,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("unmask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

/// Captures smaller than this finish before a progress bar would help.
const PROGRESS_MIN_BYTES: u64 = 64 * 1024 * 1024;

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run {
            config,
            mode,
            eve,
            report,
            metrics,
        } => {
            let mut cfg = Config::load(&config)?;
            if let Some(m) = mode {
                cfg.verdict.mode = m.into();
            }
            let eve = EveTarget::parse(eve.as_deref().unwrap_or(&cfg.output.eve));
            let hub = Hub::new(HubOptions::from_config(&cfg, RunMode::Live));
            // Bound before the program attaches: a taken port fails the start cleanly.
            let exporter = metrics_exporter(&cfg, metrics, &hub)?;
            let summary = unmask::app::runtime::run_metered(
                &cfg,
                &config.display().to_string(),
                eve,
                Some(Arc::clone(&hub)),
                mode.map(Mode::from),
                |ready| {
                    // Scripts and tests wait for this line.
                    eprintln!("unmask: READY {ready}");
                },
            )?;
            drop(exporter);
            eprintln!("  latency    {}", hub.timing_summary());
            eprint!("{summary}");
            if let Some(path) = report {
                std::fs::write(&path, serde_json::to_vec_pretty(&summary)?)
                    .with_context(|| format!("{}: writing the run report", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Fixtures {
            out,
            flood: Some(packets),
            embedded_only,
            config,
        } => {
            use unmask::fixtures::flood;
            let spec = flood::FloodSpec {
                embedded_only,
                ..flood::FloodSpec::new(packets)
            };
            let (counts, flows) = flood::write_capture(&out, spec)?;
            eprintln!(
                "{}: {} frames: {} flood (syn {}, rst {}, fin {}, ack {}, handshake {}) and {} of {flows} fixture flows",
                out.display(), counts.total(), counts.flood(), counts.syn, counts.rst, counts.fin,
                counts.ack, counts.handshake, counts.embedded
            );
            if let Some(path) = config {
                let bound = flood::MemoryBound::of(&Config::load(&path)?);
                println!("memory_bound_bytes {}", bound.total());
                eprintln!("{}: memory bound {bound}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Fixtures { out, .. } => {
            let mut w = unmask::capture::pcapwrite::PcapWriter::create_ethernet(&out)?;
            let frames = unmask::fixtures::standard_capture();
            for (ts, frame) in &frames {
                w.write(*ts, frame)
                    .with_context(|| format!("{}: writing the fixture capture", out.display()))?;
            }
            w.finish()
                .with_context(|| format!("{}: writing the fixture capture", out.display()))?;
            eprintln!(
                "{}: {} frames in {} flows",
                out.display(),
                frames.len(),
                unmask::fixtures::standard_flows().len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Ctl { socket, command } => {
            let verb = match command {
                CtlCommand::Reload => "reload",
                CtlCommand::Reopen => "reopen",
                CtlCommand::Status => "status",
            };
            let reply = unmask::app::reload::request(&socket, verb).map_err(anyhow::Error::msg)?;
            println!("{reply}");
            if let Some(m) = reply["message"].as_str() {
                eprintln!("unmask: {m}");
            }
            Ok(if reply["ok"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Baseline { command } => {
            baseline_command(command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file, print } => {
            let config = Config::load(&file)?;
            if print {
                print!("{}", config.to_toml());
            }
            eprintln!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            config,
            mode,
            eve,
            no_progress,
            metrics,
            metrics_linger,
            state,
            files,
        } => {
            let mut cfg = load_config(config.as_ref())?;
            if let Some(dir) = state {
                cfg.baseline.state_dir = dir.display().to_string();
            }
            if let Some(m) = mode {
                cfg.verdict.mode = m.into();
            }
            let hub = Hub::new(HubOptions::from_config(&cfg, RunMode::Replay));
            // Bound before any capture is opened: a taken port fails the start, not the end.
            let exporter = metrics_exporter(&cfg, metrics, &hub)?;
            let eve = EveTarget::parse(eve.as_deref().unwrap_or(&cfg.output.eve));
            let total: u64 = files
                .iter()
                .filter_map(|f| std::fs::metadata(f).ok())
                .map(|m| m.len())
                .sum();
            let progress =
                (!no_progress && total >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal())
                    .then(|| progress_bar(total));
            let outcome = replay::replay(ReplayOptions {
                config: cfg,
                files,
                eve,
                progress,
                metrics: Some(Arc::clone(&hub)),
            })
            .context("replay failed")?;
            eprint!("{}", outcome.summary);
            if let Some(e) = exporter.as_ref().filter(|_| metrics_linger > 0) {
                eprintln!(
                    "unmask: serving metrics on http://{}/metrics for {metrics_linger} s more",
                    e.local_addr()
                );
                std::thread::sleep(Duration::from_secs(metrics_linger));
            }
            drop(exporter);
            match outcome.error {
                None => Ok(ExitCode::SUCCESS),
                Some(e) => {
                    eprintln!("unmask: error: {e} (records of everything before it were written)");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn open_baseline(state: &std::path::Path) -> Result<unmask::host::baseline::Baseline> {
    let cfg = unmask::host::baseline::BaselineConfig {
        state_dir: state.display().to_string(),
        ..Default::default()
    };
    Ok(unmask::host::baseline::Baseline::open(&cfg)?)
}

fn baseline_command(command: BaselineCommand) -> Result<()> {
    use std::io::Write as _;
    use unmask::host::export;
    match command {
        BaselineCommand::Export { state, out } => {
            let b = open_baseline(&state)?;
            let mut w: Box<dyn std::io::Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("{}: creating the export", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let pairs = b.pairs();
            for (p, seen) in &pairs {
                serde_json::to_writer(&mut w, &export::row(p, seen))?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
            eprintln!("{}: {} pairs exported", b.path(), pairs.len());
        }
        BaselineCommand::Import { state, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("{}: reading the import", file.display()))?;
            let mut rows = Vec::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let row = export::parse_row(line)
                    .map_err(|e| anyhow::anyhow!("{}:{}: {e}", file.display(), i + 1))?;
                rows.push(row);
            }
            let mut b = open_baseline(&state)?;
            let n = b.import(rows)?;
            eprintln!("{}: {n} pairs imported, {} in the store", b.path(), b.len());
        }
        BaselineCommand::Stats { state } => {
            let b = open_baseline(&state)?;
            println!("{}", serde_json::to_string_pretty(&export::stats(&b))?);
        }
    }
    Ok(())
}

/// Starts the metrics endpoint on `--metrics ADDR`, else on metrics.listen when enabled.
fn metrics_exporter(
    cfg: &Config,
    flag: Option<SocketAddr>,
    hub: &Arc<Hub>,
) -> Result<Option<Exporter>> {
    let listen = flag.or_else(|| {
        cfg.metrics
            .enabled
            .then(|| cfg.metrics.listen_addr())
            .flatten()
    });
    let exporter = listen
        .map(|addr| Exporter::start(addr, Arc::clone(hub)))
        .transpose()?;
    if let Some(e) = &exporter {
        eprintln!("unmask: metrics on http://{}/metrics", e.local_addr());
    }
    Ok(exporter)
}

fn progress_bar(total: u64) -> Box<dyn FnMut(u64, u64)> {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Box::new(move |done, _total| {
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
        }
    })
}
