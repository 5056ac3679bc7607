//! The arithmetic of capacity, apart from any model: a series made whole, utilisation, the
//! replicas a peak needs, and when a forecast outgrows what the current replicas can take.

/// The replicas that keep `peak` at or under `target` (a fraction) of what they can take
/// together; at least one.
pub fn replicas_for(peak: f64, capacity_per_pod: f64, target: f64) -> u32 {
    let exact = peak / (capacity_per_pod * target);
    // A hair of slack, so that 2.1 / (1 × 0.7) = 3.0000000000000004 asks for 3, not 4.
    (exact - 1e-9).ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// `usage` as a percentage of what `replicas` pods can take.
pub fn utilisation(usage: f64, replicas: u32, capacity_per_pod: f64) -> f64 {
    100.0 * usage / (f64::from(replicas) * capacity_per_pod)
}

/// The index of the first point at or over `capacity`: where capacity runs out.
pub fn runs_out(points: &[f64], capacity: f64) -> Option<usize> {
    points.iter().position(|&point| point >= capacity)
}

/// Samples `(unix seconds, value)` on a grid `step` seconds apart made whole: from the first
/// sample to the last, with each missing point drawn on the line between its neighbours.
/// Returns the first sample's time and the values.
pub fn fill_gaps(samples: &[(i64, f64)], step: i64) -> Option<(i64, Vec<f64>)> {
    let (&(first, _), &(last, _)) = (samples.first()?, samples.last()?);
    let mut values = Vec::with_capacity(((last - first) / step + 1) as usize);
    let mut known = samples.iter().peekable();
    let mut previous = samples[0];
    let mut time = first;
    while time <= last {
        while known.peek().is_some_and(|&&(t, _)| t < time) {
            known.next();
        }
        let &&(next_time, next_value) = known.peek()?;
        let value = if next_time == time {
            previous = (next_time, next_value);
            next_value
        } else {
            let share = (time - previous.0) as f64 / (next_time - previous.0) as f64;
            previous.1 + share * (next_value - previous.1)
        };
        values.push(value);
        time += step;
    }
    Some((first, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replicas_for_a_peak_keep_it_under_the_target() {
        // 5.9 cores at 70% of 1 core a pod: 8.43 pods, so 9.
        assert_eq!(replicas_for(5.9, 1.0, 0.7), 9);
        // Exactly on the target needs no extra pod, despite floating point.
        assert_eq!(replicas_for(2.1, 1.0, 0.7), 3);
        assert_eq!(replicas_for(2.8, 0.5, 0.8), 7);
        // No load still needs one pod.
        assert_eq!(replicas_for(0.0, 1.0, 0.7), 1);
        // 3 GiB at 70% of 1 GiB pods.
        let gib = 1024.0 * 1024.0 * 1024.0;
        assert_eq!(replicas_for(3.0 * gib, gib, 0.7), 5);
    }

    #[test]
    fn utilisation_is_usage_over_what_the_replicas_can_take() {
        assert_eq!(utilisation(2.4, 4, 1.0), 60.0);
        assert_eq!(utilisation(300.0, 2, 250.0), 60.0);
    }

    #[test]
    fn capacity_runs_out_at_the_first_point_that_reaches_it() {
        let forecast = [3.0, 3.9, 4.0, 3.5, 4.2];
        assert_eq!(runs_out(&forecast, 4.0), Some(2));
        assert_eq!(runs_out(&forecast, 4.5), None);
        assert_eq!(runs_out(&forecast, 1.0), Some(0));
    }

    #[test]
    fn gaps_are_filled_on_the_line_between_neighbours() {
        let samples = [(100, 1.0), (110, 2.0), (140, 5.0), (150, 4.0)];
        let (start, values) = fill_gaps(&samples, 10).unwrap();
        assert_eq!(start, 100);
        assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0, 4.0]);
        assert_eq!(fill_gaps(&[], 10), None);
        assert_eq!(fill_gaps(&[(5, 2.0)], 10), Some((5, vec![2.0])));
    }
}
