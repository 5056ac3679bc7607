//! The on-call console under `/ui/`: server-rendered pages (maud templates, checked when the
//! crate compiles) over the same store queries as the API, a little htmx for the list that
//! refreshes itself, and every asset embedded in the binary. Pages read without JavaScript.
//!
//! Who is looking: with `server.auth.proxy` configured, the person the trusted proxy names;
//! otherwise a session made by signing in with a user's API token ([`session`]). Buttons show
//! only to roles that may use them, and every form that changes state carries a CSRF token.

mod assets;
mod control;
mod heartbeats;
mod incidents;
mod layout;
mod rules;
mod session;

use actix_web::{
    http::{header, StatusCode},
    middleware::from_fn,
    web, HttpResponse, ResponseError,
};

use super::{limits, ApiError};

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

/// `303 See Other`: where a browser goes after a form, or to sign in.
fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// Why a page is not shown: not signed in (to the sign-in page), or an API error, shown as a
/// page with the same status code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// htmx asked (the list refreshing itself): it is told to load the sign-in page whole
    /// rather than swap it into the list.
    #[error("sign in first")]
    SignIn { htmx: bool },
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl Failure {
    fn forbidden(reason: impl Into<String>) -> Self {
        Failure::Api(ApiError::Forbidden(reason.into()))
    }

    fn store(e: crate::store::StoreError, state: &super::State) -> Self {
        Failure::Api(ApiError::from_store(e, state.retry_after))
    }

    /// An act refused: the page says why, with the status the API would give.
    fn act(e: crate::acts::Refused, state: &super::State) -> Self {
        Failure::Api(ApiError::from_act(e, state.retry_after))
    }
}

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
                let mut response = layout::error_page(status, &e.to_string());
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
