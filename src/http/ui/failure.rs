//! Why a console page is not shown: not signed in, or an API error. How a failure looks in the
//! browser (the sign-in page, or an error page with the same status code) is `layout`'s to say.

use crate::{
    acts::Refused,
    http::{error::ApiError, state::State},
    store::StoreError,
};

/// Why a page is not shown: not signed in (to the sign-in page), or an API error, shown as a
/// page with the same status code.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// htmx asked (the list refreshing itself): it is told to load the sign-in page whole
    /// rather than swap it into the list.
    #[error("sign in first")]
    SignIn { htmx: bool },
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl Failure {
    pub(super) fn forbidden(reason: impl Into<String>) -> Self {
        Failure::Api(ApiError::Forbidden(reason.into()))
    }

    pub(super) fn store(e: StoreError, state: &State) -> Self {
        Failure::Api(ApiError::from_store(e, state.retry_after))
    }

    /// An act refused: the page says why, with the status the API would give.
    pub(super) fn act(e: Refused, state: &State) -> Self {
        Failure::Api(ApiError::from_act(e, state.retry_after))
    }
}
