//! PagerDuty, both ways: events (Events API v2: trigger, acknowledge, resolve under the
//! incident's dedup key) tell people ([`events`]); its webhooks (v3) come back signed
//! ([`signature`]) and become medic's acts ([`webhooks`]).

pub mod events;
pub mod signature;
pub mod webhooks;
