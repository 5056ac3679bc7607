//! Slack, both ways: incoming webhooks ([`webhook`]) and a Slack app ([`app`]: one message per
//! incident, updated in place, with its timeline in the thread) tell people; the app's buttons
//! ([`buttons`], minted and read in one place) come back signed ([`signature`]) and become
//! medic's acts ([`interactions`]). Cluster context goes to the thread ([`context`]). Every text
//! medic sends is escaped first ([`text`]).

pub mod app;
pub mod buttons;
pub mod context;
pub mod interactions;
pub mod signature;
pub mod text;
pub mod webhook;
