//! Capacity forecasts: each Deployment's usage history read from Prometheus, fitted with a
//! trend and daily and weekly seasonality ([`forecast`]), and turned into utilisation, the
//! replicas the peak needs and the day capacity runs out ([`sizing`], pure arithmetic), for
//! `medic capacity` to print ([`report`]).

pub mod forecast;
pub mod report;
pub mod sizing;
