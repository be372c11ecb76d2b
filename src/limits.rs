//! Per-connection limits: how much input and output one connection may hold,
//! and the water marks at which its flow control turns on and off.
//!
//! [`Config`](crate::Config) gives every connection the same [`Limits`];
//! [`Context::set_limits`](crate::Context::set_limits) overrides them for one
//! connection (a pub/sub subscriber gets Redis's `pubsub` class, a proxy's
//! backend a larger buffer). The thresholds, smallest first:
//!
//! ```text
//!  0 ── low water ── high water ──── soft limit ────────── max_output
//!        │              │               │                      │
//!        │              │               │                      └ a write past it closes at once
//!        │              │               └ held above it for `soft.duration`: closed
//!        │              └ input processing pauses; writes from other
//!        │                connections' callbacks are sent at once
//!        └ below it again: `Handler::drained`, input is offered again
//! ```
//!
//! The model is Redis's `client-output-buffer-limit` (hard limit, soft limit
//! with a time) plus the water marks of a proxy's flow control.

use std::fmt;
use std::time::Duration;

/// Largest high-water mark derived from `max_output` when none is set.
const DEFAULT_HIGH_WATER: usize = 256 * 1024;

/// A soft output limit: a connection whose queued output stays above
/// `bytes` for `duration` without a break is closed with
/// [`Limit::Output`](crate::Limit::Output). Redis's `pubsub 32mb 8mb 60` is
/// a hard limit of 32 MiB and `SoftLimit { bytes: 8 MiB, duration: 60 s }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftLimit {
    /// Queued output above which the clock starts.
    pub bytes: usize,
    /// How long the output may stay above `bytes`.
    pub duration: Duration,
}

/// The limits of one connection, all in bytes of that connection's buffers.
///
/// Invariants (checked by [`Limits::validate`]): `max_input > 0`,
/// `output_low_water < output_high_water <= max_output`, and a soft limit,
/// if any, is at most `max_output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most unconsumed input kept: a peer that sends a message larger than
    /// this is closed with [`Limit::Input`](crate::Limit::Input).
    pub max_input: usize,
    /// Queued output at or above which the connection is backpressured: it
    /// is not read and its unconsumed input is not offered to `data` until
    /// the queue falls below `output_low_water`.
    pub output_high_water: usize,
    /// Queued output below which a backpressured connection resumes.
    pub output_low_water: usize,
    /// Hard cap on queued output: a write past it closes the connection with
    /// [`Limit::Output`](crate::Limit::Output) at once.
    pub max_output: usize,
    /// Optional soft cap, enforced over time.
    pub soft_output: Option<SoftLimit>,
}

impl Limits {
    /// Limits with this hard output cap and water marks derived from it:
    /// high water at a quarter of the cap (at most 256 KiB), low water at a
    /// quarter of high water. Input cap 1 MiB, no soft limit. A cap under
    /// 2 bytes leaves no room for the water marks: `validate` refuses it.
    ///
    /// ```
    /// let limits = reactor::Limits::from_max_output(64 * 1024);
    /// assert_eq!(limits.output_high_water, 16 * 1024);
    /// assert_eq!(limits.output_low_water, 4 * 1024);
    /// assert!(limits.validate().is_ok());
    /// ```
    pub fn from_max_output(max_output: usize) -> Limits {
        let high = derived_high_water(max_output);
        Limits {
            max_input: 1024 * 1024,
            output_high_water: high,
            output_low_water: derived_low_water(high),
            max_output,
            soft_output: None,
        }
    }

    /// Checks the invariants; the error says which one fails.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.max_input == 0 {
            return Err(LimitsError("max_input must be greater than zero".into()));
        }
        if self.output_low_water >= self.output_high_water {
            return Err(LimitsError(format!(
                "output_low_water ({}) must be below output_high_water ({})",
                self.output_low_water, self.output_high_water
            )));
        }
        if self.max_output < self.output_high_water {
            return Err(LimitsError(format!(
                "max_output ({}) must be at least output_high_water ({})",
                self.max_output, self.output_high_water
            )));
        }
        if let Some(soft) = self.soft_output {
            if soft.bytes > self.max_output {
                return Err(LimitsError(format!(
                    "the soft output limit ({}) must not pass max_output ({})",
                    soft.bytes, self.max_output
                )));
            }
        }
        Ok(())
    }
}

/// High water derived from a hard cap: a quarter of it, at most 256 KiB, at
/// least 2 bytes so that a low-water mark fits below it.
pub(crate) fn derived_high_water(max_output: usize) -> usize {
    (max_output / 4).clamp(2, DEFAULT_HIGH_WATER)
}

/// Low water derived from high water: a quarter of it.
pub(crate) fn derived_low_water(high_water: usize) -> usize {
    high_water / 4
}

/// Limits that contradict each other, described in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsError(pub String);

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid connection limits: {}", self.0)
    }
}

impl std::error::Error for LimitsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_water_marks_fit_any_cap() {
        for cap in [2, 3, 7, 100, 4096, 1 << 20, 1 << 30] {
            let limits = Limits::from_max_output(cap);
            assert!(limits.validate().is_ok(), "{cap}: {limits:?}");
        }
    }

    #[test]
    fn a_soft_limit_above_the_hard_one_is_refused() {
        let limits = Limits {
            soft_output: Some(SoftLimit {
                bytes: 2 << 20,
                duration: Duration::from_secs(1),
            }),
            ..Limits::from_max_output(1 << 20)
        };
        assert!(limits.validate().unwrap_err().0.contains("soft"));
    }
}
