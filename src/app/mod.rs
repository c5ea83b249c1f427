//! The commands: `run` (the live appliance), `replay` (capture files), and hot reload shared
//! by both. They compose the layers below and own every thread but the workers' loops.

pub mod reload;
pub mod replay;
pub mod runtime;
