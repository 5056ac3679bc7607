//! The heartbeats page (`/ui/heartbeats`): every heartbeat medic watches, missing ones first,
//! with a link to the incident of each missing one. It reads the API's store query.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};

use super::{failure::Failure, layout, session::viewer};
use crate::{
    http::{error::ApiError, state::State},
    store::heartbeats::HeartbeatRecord,
};

/// `GET /ui/heartbeats`.
pub(super) async fn list(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Failure> {
    let viewer = viewer(&req, &state).await?;
    let mut heartbeats = state
        .store
        .heartbeats()
        .await
        .map_err(|e| ApiError::from_store(e, state.retry_after))?;
    heartbeats.sort_by_key(|h| h.state != "missing");
    Ok(layout::page(Some(&viewer), "Heartbeats", page(&heartbeats)))
}

fn page(heartbeats: &[HeartbeatRecord]) -> Markup {
    html! {
        h1 { "Heartbeats" }
        p.muted { "Alerts that must keep arriving (Prometheus' Watchdog). One that stops opens a "
            code { "HeartbeatMissing" } " incident; its return resolves it." }
        @if heartbeats.is_empty() {
            p #no-heartbeats { "No heartbeat seen yet." }
        } @else {
            table #heartbeats {
                thead { tr { th { "Heartbeat" } th { "Per value" } th { "State" } th { "Last seen" }
                    th { "Due" } th { "Incident" } } }
                tbody {
                    @for h in heartbeats { (row(h)) }
                }
            }
        }
    }
}

fn row(h: &HeartbeatRecord) -> Markup {
    html! {
        tr.heartbeat data-state=(h.state) {
            td { (h.name) }
            td { @if h.per_value.is_empty() { span.muted { "—" } } @else { code { (h.per_value) } } }
            td { @if h.state == "missing" { strong.missing { "missing" } } @else { "ok" } }
            td { @match &h.last_seen_at { Some(at) => (layout::age(at)), None => span.muted { "never" } } }
            td { (layout::time(&h.due_at)) }
            td { @if let Some(id) = h.incident_id { a href={ "/ui/incidents/" (id) } { "#" (id) } } }
        }
    }
}
