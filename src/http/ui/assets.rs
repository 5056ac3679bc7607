//! The console's stylesheet and scripts, embedded in the binary and served under a name that
//! carries a hash of their content, so browsers may keep them for a year.

use std::sync::LazyLock;

use actix_web::{http::header, web, HttpResponse};
use sha2::{Digest, Sha256};

use super::failure::Failure;
use crate::http::error::ApiError;

/// One embedded file.
pub(super) struct Asset {
    /// `console.1a2b3c4d5e6f.css`: the name with the first 12 hex digits of its SHA-256.
    pub path: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

impl Asset {
    fn new(name: &str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
        let hash = hex::encode(Sha256::digest(bytes));
        let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
        Asset {
            path: format!("/ui/assets/{stem}.{}.{ext}", &hash[..12]),
            content_type,
            bytes,
        }
    }
}

/// The stylesheet.
pub(super) static CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/console.css"),
    )
});

/// Local times for `<time>` elements.
pub(super) static JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/console.js"),
    )
});

/// htmx 2, from its npm package (`dist/htmx.min.js`).
pub(super) static HTMX: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/htmx.min.js"),
    )
});

/// `GET /ui/assets/{name}`: an embedded file by its hashed name; they never change.
pub(super) async fn serve(name: web::Path<String>) -> Result<HttpResponse, Failure> {
    let wanted = format!("/ui/assets/{name}");
    let asset = [&*CSS, &*JS, &*HTMX]
        .into_iter()
        .find(|asset| asset.path == wanted)
        .ok_or_else(|| ApiError::NotFound(format!("no asset {name}")))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(asset.bytes))
}
