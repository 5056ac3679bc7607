//! All of medic's SQL. Everything outside this module speaks domain types.

pub mod audit;
pub mod console;
pub mod context;
pub mod control;
mod database;
pub mod demotions;
pub mod effectiveness;
mod error;
pub mod heartbeats;
pub mod incidents;
pub mod integrations;
pub mod listen;
pub mod migrations;
pub mod remediations;
mod renewals;
pub mod replay;
pub mod retention;
pub mod slo;
pub mod timer_work;
pub mod timers;
pub mod tls;

pub use database::{PoolName, Store};
pub use error::{error_chain, StoreError};
