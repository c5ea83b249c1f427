//! Prometheus metrics, latency histograms and health endpoints.
//!
//! ```text
//!  worker i: Metered<Engine> ── plain counters, hdrhistograms (own memory, no sharing)
//!      │  every metrics.publish_interval_ms, between batches:
//!      │  copy counters into a preallocated box, swap histograms in, send the box
//!      ▼
//!  crossbeam channel (3 boxes circulate per worker) ──► Hub::collect folds into totals,
//!                                                      returns the emptied boxes
//!  live runtime ── LiveSource::read at scrape time ──► XDP per-CPU counters, AF_XDP socket
//!                                                      statistics, rings, handoffs
//!  Exporter thread (tiny_http): /metrics = Hub as a prometheus Collector, text format;
//!                               /healthz = up; /readyz = source ready and every worker polling
//! ```
//!
//! The packet path pays a countdown and two adds per packet, two clock reads for one packet in
//! `metrics.latency_sample_every`, and two clock reads per batch; nothing shared is written per
//! packet and no lock is taken anywhere a worker runs. See `benches/engine.rs` for the cost.
//!
//! Every exported family is listed in [`registry::SPECS`]: names follow
//! `unmask_<subsystem>_<name>_<unit>`, counters end in `_total`, per-worker families carry a
//! `worker` label. Families marked `live_only` appear once the live datapath registers a
//! [`live::LiveSource`] with [`Hub::set_live_source`]; that module documents the hook.

pub mod exporter;
pub mod live;
pub mod publish;
pub mod registry;
pub mod timing;

pub use exporter::{Exporter, ExporterError};
pub use live::{LiveSnapshot, LiveSource, LiveWorker};
pub use publish::{EngineView, Metered, Observe, WorkerProbe};
pub use registry::{Hub, HubOptions, RunMode, SPECS};
pub use timing::TimingSummary;
