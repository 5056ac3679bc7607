//! The on-call console (`/ui/`): signing in, cookies, CSRF, roles, assets, and what a person
//! sees and does in headless Chromium (driven over WebDriver by `chromedriver`).
//!
//! The browser tests save a screenshot of each page under `target/ui-screenshots/`.

mod browser;
mod chromium;
mod client;
mod pages;
mod setups;
mod sign_in;

pub(crate) use client::{csrf_of, get_page, post_form, session_cookie};
