//! `telemetry:`: where medic's traces go (OpenTelemetry over OTLP), filled in from the standard
//! `OTEL_*` variables where the settings are silent, with the checks each field needs alone.

use std::{collections::BTreeMap, collections::HashMap, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::problem::Problem;
use crate::domain::HumanDuration;

/// The path under a collector's base URL that takes traces (OTLP/HTTP; gRPC names its
/// service in the request instead).
pub const OTLP_TRACES_PATH: &str = "/v1/traces";

/// `telemetry:`: what medic says about itself besides logs and `/metrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Traces exported to an OpenTelemetry collector; off unless an endpoint is set.
    pub otlp: OtlpSettings,
}

/// `telemetry.otlp:`: an OTLP trace exporter.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpSettings {
    /// The collector's base URL, as in `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (`http://otel-collector.monitoring:4318`): over HTTP traces go to
    /// `<endpoint>/v1/traces`; over gRPC (`http://otel-collector.monitoring:4317`) the endpoint
    /// is the collector's address and has no path. None: no traces, and no tracing layer at all.
    pub endpoint: Option<String>,
    /// The full URL of the traces endpoint, as in `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used
    /// as it is (set from that variable; `endpoint` is the setting to write).
    #[serde(skip)]
    pub traces_endpoint: Option<String>,
    /// `http/protobuf` (the default) or `grpc`.
    pub protocol: Option<OtlpProtocol>,
    /// Sent with every export, e.g. a vendor's API key; values are secrets.
    pub headers: BTreeMap<String, SecretString>,
    /// The share of new traces kept, 0 to 1. A trace that arrives with a parent (Alertmanager
    /// sends `traceparent` when it traces) follows its parent's decision, and an incident's
    /// later work follows the decision made when it opened. Default 1.
    pub sample_ratio: Option<f64>,
    /// `service.name` of the spans; default `medic`.
    pub service_name: Option<String>,
    /// How long one export may take.
    pub timeout: HumanDuration,
}

/// The OTLP transport, as `OTEL_EXPORTER_OTLP_PROTOCOL` names it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP (port 4318 on a collector).
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// Protobuf over gRPC (port 4317 on a collector); headers go as gRPC metadata.
    #[serde(rename = "grpc")]
    Grpc,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            traces_endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            sample_ratio: None,
            service_name: None,
            timeout: HumanDuration(Duration::from_secs(10)),
        }
    }
}

impl OtlpSettings {
    /// The transport.
    pub fn protocol(&self) -> OtlpProtocol {
        self.protocol.unwrap_or_default()
    }

    /// The share of new traces kept.
    pub fn sample_ratio(&self) -> f64 {
        self.sample_ratio.unwrap_or(1.0)
    }

    /// `service.name`.
    pub fn service_name(&self) -> &str {
        self.service_name.as_deref().unwrap_or("medic")
    }

    /// Whether traces are exported at all.
    pub fn enabled(&self) -> bool {
        self.url().is_some()
    }

    /// Where traces are sent: the traces endpoint as given; or over HTTP
    /// `<endpoint>/v1/traces`, over gRPC the endpoint itself.
    pub fn url(&self) -> Option<String> {
        let nonempty = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        if let Some(url) = nonempty(&self.endpoint) {
            let base = url.trim_end_matches('/');
            return Some(match self.protocol() {
                OtlpProtocol::HttpProtobuf => format!("{base}{OTLP_TRACES_PATH}"),
                OtlpProtocol::Grpc => base.to_owned(),
            });
        }
        nonempty(&self.traces_endpoint)
    }

    /// Fills what the settings leave unsaid from the standard variables: the endpoint,
    /// protocol and headers (`OTEL_EXPORTER_OTLP_[TRACES_]*`), the sampler's ratio
    /// (`OTEL_TRACES_SAMPLER[_ARG]`) and `OTEL_SERVICE_NAME`. `OTEL_SDK_DISABLED=true` turns
    /// traces off. The settings win over the variables, as a program's own configuration does
    /// over the SDK's.
    pub fn fill_from(&mut self, env: &HashMap<String, String>, problems: &mut Vec<Problem>) {
        let var = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            self.endpoint = None;
            return;
        }
        if self.endpoint.is_none() {
            self.traces_endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").map(str::to_owned);
            if self.traces_endpoint.is_none() {
                self.endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT").map(str::to_owned);
            }
        }
        if self.protocol.is_none() {
            let protocol =
                var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
            match protocol {
                None | Some("http/protobuf") => {}
                Some("grpc") => self.protocol = Some(OtlpProtocol::Grpc),
                Some(other) => problems.push(Problem::new(
                    "telemetry.otlp.protocol",
                    format!(
                        "OTEL_EXPORTER_OTLP_PROTOCOL {other:?} is not supported; use http/protobuf or grpc"
                    ),
                )),
            }
        }
        let headers = var("OTEL_EXPORTER_OTLP_TRACES_HEADERS").or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS"));
        for (name, value) in headers.map(parse_headers).unwrap_or_default() {
            self.headers.entry(name).or_insert(value);
        }
        if self.sample_ratio.is_none() {
            self.sample_from(
                var("OTEL_TRACES_SAMPLER"),
                var("OTEL_TRACES_SAMPLER_ARG"),
                problems,
            );
        }
        if self.service_name.is_none() {
            self.service_name = var("OTEL_SERVICE_NAME").map(str::to_owned);
        }
    }

    /// The ratio the standard sampler variables ask for; samplers medic cannot honour are a
    /// problem rather than silently something else.
    fn sample_from(&mut self, sampler: Option<&str>, arg: Option<&str>, problems: &mut Vec<Problem>) {
        let path = "telemetry.otlp.sample_ratio";
        match sampler {
            Some("always_on" | "parentbased_always_on") => self.sample_ratio = Some(1.0),
            Some("always_off" | "parentbased_always_off") => self.sample_ratio = Some(0.0),
            None | Some("traceidratio" | "parentbased_traceidratio") => match arg.map(str::parse::<f64>) {
                None => {}
                Some(Ok(ratio)) => self.sample_ratio = Some(ratio),
                Some(Err(_)) => problems.push(Problem::new(
                    path,
                    format!(
                        "OTEL_TRACES_SAMPLER_ARG {:?} is not a number",
                        arg.unwrap_or_default()
                    ),
                )),
            },
            Some(other) => problems.push(Problem::new(
                path,
                format!("OTEL_TRACES_SAMPLER {other:?} is not supported; use parentbased_traceidratio"),
            )),
        }
    }

    /// Problems with the exporter's fields (checked only when it is on).
    pub fn check(&self, problems: &mut Vec<Problem>) {
        let Some(url) = self.url() else {
            return;
        };
        let (path, written) = match &self.endpoint {
            Some(endpoint) => ("telemetry.otlp.endpoint", endpoint.as_str()),
            None => (
                "telemetry.otlp.endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)",
                url.as_str(),
            ),
        };
        match url.parse::<http::Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {
                // gRPC's path is the service's: a path in the endpoint would be dropped, and is
                // most likely an OTLP/HTTP URL (port 4318, /v1/traces) given to gRPC by mistake.
                let has_path = uri.path_and_query().is_some_and(|p| p.as_str() != "/");
                if self.protocol() == OtlpProtocol::Grpc && has_path {
                    problems.push(Problem::new(
                        path,
                        format!("{written:?}: a gRPC endpoint is the collector's address (e.g. http://otel-collector:4317), without a path"),
                    ));
                }
            }
            _ => problems.push(Problem::new(
                path,
                format!("{written:?} is not an http:// or https:// URL with a host"),
            )),
        }
        if !(0.0..=1.0).contains(&self.sample_ratio()) {
            problems.push(Problem::new(
                "telemetry.otlp.sample_ratio",
                "must be between 0 and 1",
            ));
        }
        for (name, value) in &self.headers {
            let path = format!("telemetry.otlp.headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(Problem::new(path, "not a valid HTTP header name"));
            } else if http::HeaderValue::from_str(value.expose_secret()).is_err() {
                problems.push(Problem::new(path, "not a valid HTTP header value"));
            }
        }
        if self.timeout.0.is_zero() {
            problems.push(Problem::new("telemetry.otlp.timeout", "must be greater than 0"));
        }
        if self.service_name().trim().is_empty() {
            problems.push(Problem::new("telemetry.otlp.service_name", "must not be empty"));
        }
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `name=value` pairs separated by commas, values
/// percent-encoded (W3C Baggage's format, as the specification says).
fn parse_headers(input: &str) -> Vec<(String, SecretString)> {
    input
        .split(',')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            (!name.is_empty()).then(|| (name.to_owned(), SecretString::from(percent_decode(value.trim()))))
        })
        .collect()
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn filled(settings: OtlpSettings, pairs: &[(&str, &str)]) -> (OtlpSettings, Vec<Problem>) {
        let mut settings = settings;
        let mut problems = Vec::new();
        settings.fill_from(&env(pairs), &mut problems);
        settings.check(&mut problems);
        (settings, problems)
    }

    #[test]
    fn without_an_endpoint_nothing_is_exported() {
        let (settings, problems) = filled(OtlpSettings::default(), &[("OTEL_SERVICE_NAME", "x")]);
        assert!(!settings.enabled());
        assert_eq!(settings.url(), None);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn the_standard_variables_fill_what_the_settings_leave_out() {
        let (settings, problems) = filled(
            OtlpSettings::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%2Cb, team = sre"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ("OTEL_SERVICE_NAME", "medic-eu"),
            ],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings.url().as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(settings.headers["x-api-key"].expose_secret(), "a,b");
        assert_eq!(settings.headers["team"].expose_secret(), "sre");
        assert_eq!(settings.sample_ratio(), 0.25);
        assert_eq!(settings.service_name(), "medic-eu");
    }

    #[test]
    fn a_traces_endpoint_variable_is_used_as_it_is_and_the_setting_wins_over_both() {
        let vars = [
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://vendor.example/api/traces",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
        ];
        let (settings, _) = filled(OtlpSettings::default(), &vars);
        assert_eq!(
            settings.url().as_deref(),
            Some("https://vendor.example/api/traces")
        );
        let set = OtlpSettings {
            endpoint: Some("http://mine:4318".into()),
            ..OtlpSettings::default()
        };
        let (settings, _) = filled(set, &vars);
        assert_eq!(settings.url().as_deref(), Some("http://mine:4318/v1/traces"));
    }

    #[test]
    fn medic_variables_and_the_file_set_it_and_win_over_otel_variables() {
        let yaml = "telemetry:\n  otlp:\n    sample_ratio: 0.5\n";
        let vars = env(&[
            ("MEDIC_TELEMETRY__OTLP__ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ]);
        let (settings, problems) = super::super::read_yaml(Some(yaml), &vars);
        assert!(problems.is_empty(), "{problems:?}");
        let otlp = settings.unwrap().telemetry.otlp;
        assert_eq!(otlp.url().as_deref(), Some("http://collector:4318/v1/traces"));
        assert_eq!(otlp.sample_ratio(), 0.5);
        let (_, problems) = super::super::read_yaml(Some("telemetry:\n  otlp:\n    endpiont: x\n"), &vars);
        assert_eq!(problems[0].path, "telemetry.otlp.endpiont");
    }

    #[test]
    fn sdk_disabled_turns_traces_off() {
        let (settings, _) = filled(
            OtlpSettings::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_SDK_DISABLED", "true"),
            ],
        );
        assert!(!settings.enabled());
    }

    #[test]
    fn over_grpc_the_endpoint_is_the_collector_itself_and_a_path_is_a_problem() {
        let (settings, problems) = filled(
            OtlpSettings::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317/"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings.protocol(), OtlpProtocol::Grpc);
        assert_eq!(settings.url().as_deref(), Some("https://collector:4317"));
        let yaml = "telemetry:\n  otlp:\n    protocol: grpc\n    endpoint: http://collector:4318/v1/traces\n";
        let (_, problems) = super::super::read_yaml(Some(yaml), &HashMap::new());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "telemetry.otlp.endpoint");
        assert!(problems[0].message.contains("without a path"), "{problems:?}");
    }

    #[test]
    fn an_unknown_protocol_a_bad_ratio_a_bad_url_and_a_bad_sampler_are_problems_at_their_keys() {
        let (_, problems) = filled(
            OtlpSettings {
                endpoint: Some("collector:4318".into()),
                sample_ratio: Some(1.5),
                ..OtlpSettings::default()
            },
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
        );
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "telemetry.otlp.protocol",
                "telemetry.otlp.endpoint",
                "telemetry.otlp.sample_ratio"
            ]
        );
        assert!(problems[0].message.contains("\"http/json\""), "{problems:?}");
        assert!(
            problems[1].message.starts_with("\"collector:4318\" is not"),
            "{problems:?}"
        );
        let (_, problems) = filled(
            OtlpSettings::default(),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_TRACES_SAMPLER", "jaeger_remote"),
            ],
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("jaeger_remote"));
    }
}
