//! Where the engine's results leave the process: EVE JSON records (`eve`, and beside the file the
//! sockets of `sink` and the redis sender of `redis`) and Prometheus metrics (`metrics`). Nothing here runs on the packet path except the metrics countdown that
//! `metrics::Metered` wraps around a handler; records arrive over a channel.

pub mod community_id;
pub mod delivery;
pub mod eve;
pub mod json;
pub mod metrics;
pub mod redis;
pub mod sink;
