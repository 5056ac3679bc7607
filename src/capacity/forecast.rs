//! The forecast of one usage series: MSTL (augurs) takes out the daily and weekly cycles with
//! LOESS, an undamped additive-trend ETS model (Holt's linear method) extrapolates what is
//! left, and the cycles are added back. Prediction intervals come from the ETS model.

use std::time::Duration;

use augurs::{
    ets::{trend::AutoETSTrendModel, AutoETS},
    mstl::MSTLModel,
    Fit as _, Predict as _,
};

/// The two-sided prediction interval whose upper bound is the 95th percentile.
pub const LEVEL: f64 = 0.9;
const DAY: u64 = 86_400;

/// The forecast of the `horizon` points after the history, one `step` apart.
#[derive(Debug, Clone)]
pub struct Forecast {
    /// The median (the point forecast), never below 0.
    pub median: Vec<f64>,
    /// The 95th percentile: the upper bound of the 90% prediction interval.
    pub p95: Vec<f64>,
    /// What was fitted, e.g. `MSTL(24, 168) + ETS(A,A,N)`.
    pub model: String,
}

/// Why a series could not be forecast.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    #[error("{points} points of history are fewer than two days ({needed}): too few to see a daily cycle")]
    TooShort { points: usize, needed: usize },
    #[error("the model could not be fitted: {0}")]
    Model(String),
}

/// The seasonal periods, in steps, that `points` of history can show: a day once two days are
/// there, a week once four weeks are (with fewer, MSTL's weekly component soaks up part of the
/// trend, and the forecast saws up and down each week).
pub fn periods(points: usize, step: Duration) -> Vec<usize> {
    let day = (DAY / step.as_secs().max(1)) as usize;
    [(day, 2 * day), (7 * day, 28 * day)]
        .into_iter()
        .filter(|&(_, needs)| points >= needs)
        .map(|(period, _)| period)
        .collect()
}

/// Fits the history (evenly spaced, no gaps) and forecasts `horizon` steps past its end.
pub fn forecast(history: &[f64], step: Duration, horizon: usize) -> Result<Forecast, ForecastError> {
    let periods = periods(history.len(), step);
    if periods.is_empty() {
        return Err(ForecastError::TooShort {
            points: history.len(),
            needed: 2 * (DAY / step.as_secs().max(1)) as usize,
        });
    }
    let model = |e: &dyn std::fmt::Display| ForecastError::Model(e.to_string());
    // Undamped: capacity planning wants growth extrapolated, not flattened out.
    let trend = AutoETS::new(1, "AAN")
        .and_then(|ets| ets.damped(false))
        .map_err(|e| model(&e))?;
    let fitted = MSTLModel::new(periods.clone(), AutoETSTrendModel::from(trend))
        .fit(history)
        .map_err(|e| model(&e))?;
    let predicted = fitted.predict(horizon, LEVEL).map_err(|e| model(&e))?;
    let upper = predicted
        .intervals
        .map(|intervals| intervals.upper)
        .ok_or_else(|| ForecastError::Model("the model gave no prediction interval".into()))?;
    let clamp = |values: Vec<f64>| values.into_iter().map(|v| v.max(0.0)).collect();
    let periods: Vec<String> = periods.iter().map(usize::to_string).collect();
    Ok(Forecast {
        median: clamp(predicted.point),
        p95: clamp(upper),
        model: format!("MSTL({}) + ETS(A,A,N)", periods.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_day_is_a_season_from_two_days_and_a_week_from_four_weeks() {
        assert_eq!(periods(47, HOUR), Vec::<usize>::new());
        assert_eq!(periods(48, HOUR), vec![24]);
        assert_eq!(periods(14 * 24, HOUR), vec![24]);
        assert_eq!(periods(28 * 24, HOUR), vec![24, 168]);
        assert_eq!(periods(30 * 288, Duration::from_secs(300)), vec![288, 2016]);
    }

    #[test]
    fn a_linear_trend_with_a_daily_cycle_is_extrapolated() {
        // 1 + 0.1 a day, ± 0.5 over the day, with a little deterministic noise.
        let usage = |h: usize| {
            let noise = ((h * 7919) % 101) as f64 / 1000.0 - 0.05;
            1.0 + 0.1 * h as f64 / 24.0 + 0.5 * (std::f64::consts::TAU * h as f64 / 24.0).sin() + noise
        };
        let history: Vec<f64> = (0..14 * 24).map(usage).collect();
        let forecast = forecast(&history, HOUR, 30 * 24).unwrap();
        assert_eq!(forecast.model, "MSTL(24) + ETS(A,A,N)");
        for (i, (median, p95)) in forecast.median.iter().zip(&forecast.p95).enumerate() {
            let truth = usage(14 * 24 + i);
            // Holt's method reads the slope from the last days: within 0.1 plus 1.5% of a
            // unit per day ahead (the slope fitted is 0.115 a day, where 0.1 is true).
            let tolerance = 0.1 + 0.015 * i as f64 / 24.0;
            assert!(
                (median - truth).abs() < tolerance,
                "step {i}: {median} is not {truth}"
            );
            assert!(p95 >= median, "step {i}: p95 {p95} under the median {median}");
        }
        let short = super::forecast(&history[..47], HOUR, 24).unwrap_err();
        assert!(short.to_string().contains("two days"), "{short}");
    }
    #[test]
    fn four_weeks_of_history_carry_a_weekly_cycle_forward() {
        // 100 on weekdays and 70 at weekends (days 5 and 6 of each week), ± 10 over the day.
        let usage = |h: usize| {
            let weekend = if (h / 24) % 7 >= 5 { -30.0 } else { 0.0 };
            100.0 + weekend + 10.0 * (std::f64::consts::TAU * h as f64 / 24.0).sin()
        };
        let history: Vec<f64> = (0..28 * 24).map(usage).collect();
        let forecast = forecast(&history, HOUR, 7 * 24).unwrap();
        assert_eq!(forecast.model, "MSTL(24, 168) + ETS(A,A,N)");
        let day_mean = |day: usize| forecast.median[day * 24..(day + 1) * 24].iter().sum::<f64>() / 24.0;
        for day in 0..7 {
            let expected = if day >= 5 { 70.0 } else { 100.0 };
            let mean = day_mean(day);
            assert!(
                (mean - expected).abs() < 5.0,
                "day {day}: {mean} is not {expected}"
            );
        }
    }
}
