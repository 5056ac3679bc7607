//! The life of a long-running command around its work: logging and tracing set up first,
//! queued spans flushed at the end, and every problem or error printed with the exit code.

use std::{future::Future, process::ExitCode};

use crate::{
    config::{LogFormat, OtlpSettings, Problems},
    telemetry,
};

/// Runs `work` on what was loaded, once logging (and tracing, if configured) is set up, and
/// flushes the spans still queued when it ends; or prints every problem found.
pub(super) async fn with_loaded<T, Fut>(
    loaded: Result<T, Problems>,
    telemetry_of: for<'a> fn(&'a T) -> (LogFormat, Option<&'a OtlpSettings>),
    work: impl FnOnce(T) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    let (format, otlp) = telemetry_of(&loaded);
    let telemetry = match telemetry::init(format, otlp) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("error: {e:?}");
            return ExitCode::FAILURE;
        }
    };
    let result = work(loaded).await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "medic failed");
            eprintln!("error: {e:?}");
            ExitCode::FAILURE
        }
    }
}
