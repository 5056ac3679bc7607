//! The limits acts meet whichever surface asks: a window's length and how many may be open at
//! once (`maintenance:` in the settings).

use std::time::Duration;

use crate::{
    config::MaintenanceSettings,
    domain::{Actor, Role},
};

/// What every window must meet (`maintenance:` in the settings).
#[derive(Debug, Clone)]
pub struct WindowLimits {
    /// A responder's window lasts at most this long; a longer one needs an admin.
    pub max_duration: Duration,
    /// Windows in force or scheduled at once.
    pub max_windows: u32,
}

impl WindowLimits {
    /// No window, whoever opens it, lasts longer.
    pub const LONGEST: Duration = MaintenanceSettings::LONGEST;

    pub fn new(settings: &MaintenanceSettings) -> Self {
        Self {
            max_duration: settings.max_duration.0,
            max_windows: settings.max_windows,
        }
    }

    /// The longest window this actor may open.
    pub fn longest_for(&self, actor: &Actor) -> Duration {
        if actor.may(Role::Admin) {
            Self::LONGEST
        } else {
            self.max_duration
        }
    }
}
