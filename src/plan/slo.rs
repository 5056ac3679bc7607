//! Service level objectives compiled: each SLO's SLI as one of two shapes, its objective as an
//! error budget, and the matchers that say which incidents affect it.

use std::time::Duration;

use super::matchers::Matchers;
use crate::config::{self, Problem, Problems, SloSettings, Source};

/// One SLO, checked.
#[derive(Debug, Clone)]
pub struct Slo {
    /// Unique, and plain enough to be a label value.
    pub name: String,
    pub service: String,
    pub description: Option<String>,
    /// The share of good events promised, in percent, strictly between 0 and 100.
    pub objective: f64,
    /// The period the objective is measured over.
    pub window: Duration,
    pub sli: Sli,
    /// Which of medic's incidents affect this SLO.
    pub incidents: Matchers,
    /// The incident label that names who owns the follow-up.
    pub owner_label: Option<String>,
}

/// How an SLI is measured.
#[derive(Debug, Clone)]
pub enum Sli {
    /// Two PromQL queries (good events, all events) with `$window` where the range goes.
    Ratio { good: String, total: String },
    /// The share of a histogram's observations at or under `threshold`.
    Latency { histogram: String, threshold: Duration },
}

impl Slo {
    /// The share of events allowed to be bad: `1 - objective / 100`.
    pub fn error_budget(&self) -> f64 {
        (100.0 - self.objective) / 100.0
    }
}

/// Compiles every entry of `slos:`; entries with a problem are reported and left out.
pub fn compile(settings: &[SloSettings], problems: &mut Vec<Problem>) -> Vec<Slo> {
    settings
        .iter()
        .enumerate()
        .filter_map(|(i, slo)| compile_one(&format!("slos[{i}]"), slo, problems))
        .collect()
}

fn compile_one(at: &str, slo: &SloSettings, problems: &mut Vec<Problem>) -> Option<Slo> {
    let mut ok = true;
    for (j, entry) in slo.incidents.iter().enumerate() {
        if let Err(e) = Matchers::parse(std::slice::from_ref(entry)) {
            problems.push(Problem::new(format!("{at}.incidents[{j}]"), e.to_string()));
            ok = false;
        }
    }
    let incidents = Matchers::parse(&slo.incidents).ok().filter(|_| ok)?;
    let sli = match (&slo.sli.ratio, &slo.sli.latency) {
        (Some(ratio), None) => Sli::Ratio {
            good: ratio.good.clone(),
            total: ratio.total.clone(),
        },
        (None, Some(latency)) => Sli::Latency {
            histogram: latency.histogram.clone(),
            threshold: latency.threshold.0,
        },
        // Reported by the config's own check.
        _ => return None,
    };
    Some(Slo {
        name: slo.name.clone(),
        service: slo.service.clone(),
        description: slo.description.clone(),
        objective: slo.objective,
        window: slo.window.0,
        sli,
        incidents,
        owner_label: slo.owner_label.clone(),
    })
}

/// Loads the settings and compiles the SLOs alone: making rules needs none of the secrets
/// `serve` reads, so only problems in `slos:` and `prometheus:` (or a file that cannot be read
/// at all) stop it.
pub fn load(source: &Source) -> Result<Vec<Slo>, Problems> {
    let (settings, problems) = config::read(source);
    let Some(settings) = settings else {
        return Err(Problems(problems));
    };
    let mut problems: Vec<Problem> = problems.into_iter().filter(concerns_slos).collect();
    let slos = compile(&settings.slos, &mut problems);
    if problems.is_empty() {
        Ok(slos)
    } else {
        Err(Problems(problems))
    }
}

fn concerns_slos(problem: &Problem) -> bool {
    let path = problem.path.as_str();
    path == "slos" || path.starts_with("slos[") || path.starts_with("prometheus")
}
