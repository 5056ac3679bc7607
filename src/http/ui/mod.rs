//! The on-call console under `/ui/`: server-rendered pages (maud templates, checked when the
//! crate compiles) over the same store queries as the API, a little htmx for the list that
//! refreshes itself, and every asset embedded in the binary. Pages read without JavaScript.
//!
//! Who is looking: with `server.auth.proxy` configured, the person the trusted proxy names;
//! otherwise a session made by signing in with a user's API token ([`session`]). Buttons show
//! only to roles that may use them, and every form that changes state carries a CSRF token.

mod assets;
mod control;
mod failure;
mod heartbeats;
mod incidents;
mod layout;
mod rules;
mod session;
mod viewer;

use actix_web::{middleware::from_fn, web, HttpResponse};

use self::{failure::Failure, layout::see_other};
use super::{error::ApiError, limits};

/// Registers the console's routes on the `/ui` scope.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(|| async { see_other("/ui/") }))
        .service(read_page("/", incidents::list))
        .service(read_page("/incidents", incidents::rows))
        .service(read_page("/incidents/{id}", incidents::show))
        .route("/incidents/{id}/ack", web::post().to(incidents::acknowledge))
        .route("/incidents/{id}/silence", web::post().to(incidents::silence))
        .service(read_page("/remediations", control::remediations))
        .route("/remediations/{id}/approve", web::post().to(control::approve))
        .route("/remediations/{id}/reject", web::post().to(control::reject))
        .service(read_page("/heartbeats", heartbeats::list))
        .service(
            web::resource("/maintenance")
                .wrap(from_fn(limits::console_reads))
                .route(web::get().to(control::maintenance))
                .route(web::post().to(control::create_window)),
        )
        .route("/maintenance/{id}/end", web::post().to(control::end_window))
        .route("/pause", web::post().to(control::set_pause))
        .route("/resume", web::post().to(control::clear_pause))
        .service(
            web::resource("/rules")
                .app_data(
                    web::FormConfig::default()
                        .limit(rules::EXPLAIN_LIMIT)
                        .error_handler(|e, _| Failure::from(ApiError::BadRequest(e.to_string())).into()),
                )
                .route(web::get().to(rules::rules))
                .route(web::post().to(rules::explain)),
        )
        .route(
            "/rules/{rule}/steps/{step}/promote",
            web::post().to(rules::promote),
        )
        .route("/login", web::get().to(session::login_page))
        .route("/login", web::post().to(session::login))
        .route("/logout", web::post().to(session::logout))
        .route("/assets/{name}", web::get().to(assets::serve))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(Failure::from(ApiError::NotFound("no such page".into())))
        }));
}

/// A page that reads the database: its GET counts against the viewer's share of reads (assets
/// and the sign-in page do not).
fn read_page<F, Args>(path: &str, handler: F) -> impl actix_web::dev::HttpServiceFactory
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .wrap(from_fn(limits::console_reads))
        .route(web::get().to(handler))
}
