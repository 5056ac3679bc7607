//! Alertmanager-style label matchers (placeholder, being written).
