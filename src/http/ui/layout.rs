//! The frame every page shares (head, navigation, who is signed in), the error page and the
//! redirect a failure becomes, and the small pieces pages have in common: times, severities,
//! links, the CSRF field.

use actix_web::{
    http::{header, StatusCode},
    HttpResponse, ResponseError,
};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::{assets, failure::Failure, viewer::Viewer};
use crate::http::error::ApiError;

/// A whole page, 200.
pub(super) fn page(viewer: Option<&Viewer>, title: &str, body: Markup) -> HttpResponse {
    respond(StatusCode::OK, viewer, title, body)
}

/// A whole page with this status.
pub(super) fn respond(
    status: StatusCode,
    viewer: Option<&Viewer>,
    title: &str,
    body: Markup,
) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false}"#;
                title { (title) " · medic" }
                link rel="stylesheet" href=(assets::CSS.path);
                script src=(assets::HTMX.path) defer {}
                script src=(assets::JS.path) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "medic" }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Console" {
                            a href="/ui/" { "Incidents" }
                            a href="/ui/remediations" { "Remediations" }
                            a href="/ui/maintenance" { "Maintenance" }
                            a href="/ui/heartbeats" { "Heartbeats" }
                            a href="/ui/rules" { "Rules" }
                        }
                        div.who {
                            span { (viewer.person.name) " (" (viewer.person.role) ")" }
                            @if viewer.signed_in {
                                form method="post" action="/ui/logout" {
                                    (csrf(viewer))
                                    button.link type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    };
    html_response(status, viewer, markup)
}

/// A fragment or page as an HTML response, with the headers every console response carries.
pub(super) fn html_response(status: StatusCode, viewer: Option<&Viewer>, markup: Markup) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"));
    if let Some(cookie) = viewer.and_then(|v| v.set_cookie.as_deref()) {
        response.insert_header((header::SET_COOKIE, cookie));
    }
    response.body(markup.into_string())
}

/// An error as a page.
pub(super) fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        h1 { (status.as_u16()) " " (reason) }
        p.problem role="alert" { (message) }
        p { a href="/ui/" { "Back to the incidents" } }
    };
    respond(status, None, reason, body)
}

/// `303 See Other`: where a browser goes after a form, or to sign in.
pub(super) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// A failure as the browser gets it: the sign-in page, or the error as a page with the status
/// the API would give.
impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        match self {
            Failure::SignIn { htmx: true } => StatusCode::OK,
            Failure::SignIn { htmx: false } => StatusCode::SEE_OTHER,
            Failure::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Failure::SignIn { htmx: true } => HttpResponse::Ok()
                .insert_header(("HX-Redirect", "/ui/login"))
                .finish(),
            Failure::SignIn { htmx: false } => see_other("/ui/login"),
            Failure::Api(e) => {
                if let ApiError::Internal(cause) = e {
                    tracing::error!(error = ?cause, "console page failed");
                }
                let status = e.status_code();
                let mut response = error_page(status, &e.to_string());
                if let Some(seconds) = e.retry_after() {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
                }
                response
            }
        }
    }
}

/// The hidden CSRF field of a form that changes state.
pub(super) fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A time: UTC in the page, the viewer's time zone once the script runs, UTC on hover.
pub(super) fn time(at: &DateTime<Utc>) -> Markup {
    let utc = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! { time datetime=(at.to_rfc3339()) title=(utc) data-local { (utc) } }
}

/// How long ago, with the time on hover.
pub(super) fn age(at: &DateTime<Utc>) -> Markup {
    let seconds = (Utc::now() - *at).num_seconds().max(0);
    let text = match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    };
    let utc = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! { time datetime=(at.to_rfc3339()) title=(utc) { (text) } }
}

/// A severity by colour and by word.
pub(super) fn severity(word: Option<&str>) -> Markup {
    let word = word.unwrap_or("none");
    let class = match word {
        "critical" | "page" | "error" => "sev sev-critical",
        "warning" | "warn" => "sev sev-warning",
        "info" => "sev sev-info",
        _ => "sev sev-other",
    };
    html! { span class=(class) { (word) } }
}

/// A link only to http(s): an annotation that says `javascript:` stays text.
pub(super) fn link(url: &str, text: &str) -> Markup {
    if url.starts_with("https://") || url.starts_with("http://") {
        html! { a href=(url) rel="noopener noreferrer" { (text) } }
    } else {
        html! { (text) }
    }
}

/// A JSON object of labels or annotations as `name=value` chips.
pub(super) fn labels(value: &Value) -> Markup {
    html! {
        ul.labels {
            @if let Some(map) = value.as_object() {
                @for (name, value) in map {
                    li { span.k { (name) } "=" span.v { (value.as_str().map_or_else(|| value.to_string(), str::to_owned)) } }
                }
            }
        }
    }
}
