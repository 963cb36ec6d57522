//! The delivery retry policy: which answers are worth another attempt, and when it is due
//! (exponential backoff with full jitter, honouring a clamped `Retry-After`).
//!
//! A task is delivered in rounds: the first starts when it is accepted, and each manual retry
//! of a failed task starts another. The policy counts the attempts of the current round, so
//! every round gets the whole schedule; attempt numbers in the log count the task's whole life.

use std::time::Duration;

use super::{TaskTransitionError, task_transition};
use crate::model::{AttemptVerdict, DeliveryFailure, DeliveryReport};
use crate::model::{DeliveryRound, TaskStatus, TaskStatusChange, Timestamp};

/// How often and how far apart a task's delivery is attempted in one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per round, the first one included; at least 1.
    pub max_attempts: u32,
    /// The ceiling of the delay after the first attempt; it doubles with each further attempt.
    pub base: Duration,
    /// No delay is longer than this, whatever the attempt or the target's `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Eight attempts; the ceiling goes 5 s, 10 s, 20 s … and stops at one hour.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
        }
    }
}

/// A delivery attempt's number, counted over the task's life and within its round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptNumber {
    /// From 1 over the task's whole life: unique, the key of its delivery-attempt log.
    pub overall: u32,
    /// From 1 in the current round: what the retry policy counts.
    pub in_round: u32,
}

/// The number of the attempt that follows `attempts` made so far, of which
/// `attempts_before_round` were made before the current round began (see
/// [`crate::model::Task::attempts_before_round`]).
///
/// Saturates rather than wraps: a count beyond `u32::MAX` stays there, and a round start
/// beyond `attempts` (which no store writes) counts as a round with no attempt yet.
pub const fn next_attempt_number(attempts: u32, attempts_before_round: u32) -> AttemptNumber {
    AttemptNumber {
        overall: attempts.saturating_add(1),
        in_round: attempts
            .saturating_sub(attempts_before_round)
            .saturating_add(1),
    }
}

/// The change that moves a task from `from`, after `attempts` delivery attempts, to `to` at
/// `at`, if the board allows it (see [`task_transition`]).
///
/// Setting a task back to `queued` (a manual retry: the only way there) starts a new delivery
/// round: due at `at`, after the `attempts` made so far (so the policy counts from 1 again), with
/// the last error cleared. `attempts` itself is kept, so attempt numbers stay unique over a
/// task's life. Any other change starts no round.
///
/// # Errors
/// [`TaskTransitionError`] when the board does not allow `from → to`.
pub fn task_status_change(
    from: TaskStatus,
    attempts: u32,
    to: TaskStatus,
    at: Timestamp,
) -> Result<TaskStatusChange, TaskTransitionError> {
    let to = task_transition(from, to)?;
    let round = (to == TaskStatus::Queued).then_some(DeliveryRound {
        attempts_before: attempts,
        due_at: at,
    });
    Ok(TaskStatusChange {
        from,
        to,
        at,
        round,
    })
}

/// What an attempt's report means for its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The target answered 2xx.
    Delivered,
    /// A transient failure (408, 429, 5xx, 1xx, 3xx, timeout, broken connection): try again,
    /// no earlier than `retry_after` when the target asked for one.
    Retry { retry_after: Option<Duration> },
    /// The target refused the task (any other 4xx) or policy forbids the endpoint: give up.
    Permanent,
}

/// Classifies one delivery attempt.
///
/// Redirects are not followed, so a 3xx is retried like a 5xx: the endpoint may be back in
/// place later, and if not the task fails when its attempts run out.
pub fn classify(report: &DeliveryReport) -> Disposition {
    match report {
        DeliveryReport::Answered {
            status_code,
            retry_after,
            ..
        } => match status_code {
            200..=299 => Disposition::Delivered,
            408 | 429 => Disposition::Retry {
                retry_after: *retry_after,
            },
            400..=499 => Disposition::Permanent,
            _ => Disposition::Retry {
                retry_after: *retry_after,
            },
        },
        DeliveryReport::Failed { failure, .. } => match failure {
            DeliveryFailure::Timeout | DeliveryFailure::Connection(_) => {
                Disposition::Retry { retry_after: None }
            }
            DeliveryFailure::Blocked(_) => Disposition::Permanent,
        },
    }
}

/// How long to wait after attempt number `attempt` of a round (1 for the round's first; see
/// [`AttemptNumber::in_round`]) before the next one, or `None` when that was the last attempt
/// the policy allows in a round.
///
/// The delay is drawn uniformly from `[0, min(max_delay, base · 2^(attempt-1)))` ("full
/// jitter", so retries of many tasks failing together spread out), using `random_fraction` in
/// `[0, 1)`; values outside are clamped into it. A `retry_after` asked for by the target is a
/// lower bound, itself clamped to `max_delay`.
pub fn next_delay(
    policy: &RetryPolicy,
    attempt: u32,
    random_fraction: f64,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    if attempt >= policy.max_attempts {
        return None;
    }
    let doublings = attempt.saturating_sub(1);
    let ceiling = 1_u32
        .checked_shl(doublings)
        .and_then(|factor| policy.base.checked_mul(factor))
        .map_or(policy.max_delay, |d| d.min(policy.max_delay));
    let fraction = if random_fraction.is_nan() {
        0.0
    } else {
        random_fraction.clamp(0.0, 1.0)
    };
    let jittered = ceiling.mul_f64(fraction).min(ceiling);
    let floor = retry_after.map_or(Duration::ZERO, |asked| asked.min(policy.max_delay));
    Some(jittered.max(floor))
}

/// The verdict on attempt number `attempt` of a task's round ([`AttemptNumber::in_round`]),
/// made at `now`: classifies `report` and, for a transient failure, schedules the next attempt
/// with [`next_delay`].
pub fn attempt_verdict(
    policy: &RetryPolicy,
    attempt: u32,
    report: &DeliveryReport,
    random_fraction: f64,
    now: Timestamp,
) -> AttemptVerdict {
    match classify(report) {
        Disposition::Delivered => AttemptVerdict::Delivered,
        Disposition::Permanent => AttemptVerdict::Failed,
        Disposition::Retry { retry_after } => {
            match next_delay(policy, attempt, random_fraction, retry_after) {
                Some(delay) => AttemptVerdict::RetryAt(now.plus(delay)),
                None => AttemptVerdict::Failed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn answered(status_code: u16, retry_after: Option<Duration>) -> DeliveryReport {
        DeliveryReport::Answered {
            status_code,
            body_excerpt: String::new(),
            retry_after,
            latency: Duration::from_millis(3),
        }
    }

    fn failed(failure: DeliveryFailure) -> DeliveryReport {
        DeliveryReport::Failed {
            failure,
            latency: Duration::from_millis(3),
        }
    }

    #[test]
    fn classifies_every_kind_of_answer() {
        let retry = |retry_after| Disposition::Retry { retry_after };
        let check = |report: DeliveryReport, expected: Disposition| {
            assert_eq!(classify(&report), expected, "{report:?}");
        };
        for code in [200, 201, 202, 204, 299] {
            check(answered(code, None), Disposition::Delivered);
        }
        for code in [400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 451, 499] {
            check(answered(code, Some(secs(9))), Disposition::Permanent);
        }
        check(answered(408, None), retry(None));
        check(answered(429, Some(secs(30))), retry(Some(secs(30))));
        for code in [500, 502, 503, 504, 599] {
            check(answered(code, None), retry(None));
        }
        check(answered(503, Some(secs(2))), retry(Some(secs(2))));
        for code in [100, 301, 302, 307, 308] {
            check(answered(code, None), retry(None));
        }
        check(failed(DeliveryFailure::Timeout), retry(None));
        check(
            failed(DeliveryFailure::Connection("refused".into())),
            retry(None),
        );
        check(
            failed(DeliveryFailure::Blocked("127.0.0.1".into())),
            Disposition::Permanent,
        );
    }

    #[test]
    fn backs_off_exponentially_with_full_jitter_up_to_the_limit() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base: secs(2),
            max_delay: secs(20),
        };
        let check = |attempt, fraction, retry_after, expected: Option<Duration>| {
            assert_eq!(
                next_delay(&policy, attempt, fraction, retry_after),
                expected,
                "attempt {attempt}, fraction {fraction}, retry-after {retry_after:?}"
            );
        };
        // The ceiling doubles: 2, 4, 8, 16, then max_delay.
        check(1, 0.5, None, Some(secs(1)));
        check(2, 0.5, None, Some(secs(2)));
        check(3, 0.5, None, Some(secs(4)));
        check(4, 0.5, None, Some(secs(8)));
        check(5, 0.5, None, Some(secs(10)));
        // Full jitter: anywhere from zero to just under the ceiling.
        check(3, 0.0, None, Some(Duration::ZERO));
        check(3, 0.25, None, Some(secs(2)));
        check(3, 0.999_999, None, Some(Duration::from_micros(7_999_992)));
        // Fractions outside [0, 1) are clamped, never exceeding the ceiling.
        check(3, -1.0, None, Some(Duration::ZERO));
        check(3, f64::NAN, None, Some(Duration::ZERO));
        check(3, 7.0, None, Some(secs(8)));
        // Retry-After is a floor, clamped to max_delay.
        check(1, 0.0, Some(secs(15)), Some(secs(15)));
        check(1, 0.0, Some(secs(3600)), Some(secs(20)));
        check(4, 0.75, Some(secs(1)), Some(secs(12)));
        // Exhausted: the attempt just made was the last one allowed.
        check(6, 0.5, None, None);
        check(7, 0.5, Some(secs(1)), None);
        check(u32::MAX, 0.5, None, None);
    }

    #[test]
    fn huge_attempt_numbers_and_delays_saturate_at_max_delay() {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            base: Duration::MAX,
            max_delay: secs(60),
        };
        assert_eq!(next_delay(&policy, 1, 0.5, None), Some(secs(30)));
        assert_eq!(next_delay(&policy, 200, 0.5, None), Some(secs(30)));
        let policy = RetryPolicy {
            base: Duration::from_millis(1),
            ..policy
        };
        assert_eq!(next_delay(&policy, 40, 0.5, None), Some(secs(30)));
        assert_eq!(next_delay(&policy, 64, 0.5, None), Some(secs(30)));
    }

    #[test]
    fn a_single_attempt_policy_never_retries() {
        let policy = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(next_delay(&policy, 1, 0.5, None), None);
        let zero = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(next_delay(&zero, 1, 0.5, None), None);
    }

    #[test]
    fn attempts_are_numbered_over_the_life_and_within_the_round() {
        let check = |attempts, before_round, overall, in_round| {
            assert_eq!(
                next_attempt_number(attempts, before_round),
                AttemptNumber { overall, in_round },
                "{attempts} attempts, {before_round} before the round"
            );
        };
        // A new task, and one in its first round.
        check(0, 0, 1, 1);
        check(1, 0, 2, 2);
        check(7, 0, 8, 8);
        // Retried by hand after 8 attempts: the round starts over, the numbers go on.
        check(8, 8, 9, 1);
        check(9, 8, 10, 2);
        check(15, 8, 16, 8);
        // Retried again after 16.
        check(16, 16, 17, 1);
        // Retried after a delivered task failed at its agent, after one attempt.
        check(1, 1, 2, 1);
        // A round start beyond the attempts is a round with no attempt yet.
        check(3, 5, 4, 1);
        // Saturating at the ends.
        check(u32::MAX, 0, u32::MAX, u32::MAX);
        check(u32::MAX, u32::MAX, u32::MAX, 1);
        check(u32::MAX - 1, 2, u32::MAX, u32::MAX - 2);
    }

    /// Three attempts a round, the first delay's ceiling 10 s.
    fn three_attempts(max_delay: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base: secs(10),
            max_delay,
        }
    }

    /// Every round gets the whole schedule: the delays and the verdict at the end of a round
    /// depend on the attempt's number within its round, never on the attempts before it.
    #[test]
    fn a_retried_task_gets_the_whole_schedule_again() {
        let policy = three_attempts(secs(3600));
        let now = Timestamp::from_unix_micros(1_000_000);
        let schedule = |before_round: u32| -> Vec<(u32, AttemptVerdict)> {
            let mut attempts = before_round;
            let mut seen = Vec::new();
            loop {
                let number = next_attempt_number(attempts, before_round);
                let verdict =
                    attempt_verdict(&policy, number.in_round, &answered(503, None), 0.5, now);
                seen.push((number.overall, verdict));
                attempts = number.overall;
                if verdict == AttemptVerdict::Failed {
                    return seen;
                }
                assert!(seen.len() < 100, "the round never ends");
            }
        };
        let retry_at = |s| AttemptVerdict::RetryAt(now.plus(secs(s)));
        for before_round in [0, 3, 1_000] {
            assert_eq!(
                schedule(before_round),
                [
                    (before_round + 1, retry_at(5)),
                    (before_round + 2, retry_at(10)),
                    (before_round + 3, AttemptVerdict::Failed)
                ],
                "{before_round} attempts before the round"
            );
        }
    }

    #[test]
    fn verdicts() {
        let policy = three_attempts(secs(60));
        let now = Timestamp::from_unix_micros(1_000_000);
        let check = |attempt, report: DeliveryReport, expected: AttemptVerdict| {
            assert_eq!(
                attempt_verdict(&policy, attempt, &report, 0.5, now),
                expected,
                "attempt {attempt}: {report:?}"
            );
        };
        check(1, answered(200, None), AttemptVerdict::Delivered);
        check(3, answered(204, None), AttemptVerdict::Delivered);
        check(1, answered(400, None), AttemptVerdict::Failed);
        check(
            1,
            answered(500, None),
            AttemptVerdict::RetryAt(now.plus(secs(5))),
        );
        check(
            2,
            answered(429, Some(secs(45))),
            AttemptVerdict::RetryAt(now.plus(secs(45))),
        );
        check(
            2,
            failed(DeliveryFailure::Timeout),
            AttemptVerdict::RetryAt(now.plus(secs(10))),
        );
        check(3, answered(503, None), AttemptVerdict::Failed);
        check(3, failed(DeliveryFailure::Timeout), AttemptVerdict::Failed);
        check(
            1,
            failed(DeliveryFailure::Blocked("10.0.0.1".into())),
            AttemptVerdict::Failed,
        );
    }

    #[test]
    fn only_a_retry_starts_a_new_round() {
        use TaskStatus::{Completed, Delivered, Failed, InProgress, Queued};
        let at = Timestamp::from_unix_micros(42_000_000);
        let round = |attempts_before| {
            Some(DeliveryRound {
                attempts_before,
                due_at: at,
            })
        };
        // (from, attempts so far, to, the round the change starts; None: not allowed)
        let check = |from, attempts, to, expected: Option<Option<DeliveryRound>>| {
            let change = task_status_change(from, attempts, to, at);
            match expected {
                Some(round) => assert_eq!(
                    change,
                    Ok(TaskStatusChange {
                        from,
                        to,
                        at,
                        round
                    }),
                    "{from:?} -> {to:?} after {attempts}"
                ),
                None => assert_eq!(
                    change,
                    Err(TaskTransitionError { from, to }),
                    "{from:?} -> {to:?}"
                ),
            }
        };
        check(Failed, 3, Queued, Some(round(3)));
        check(Failed, 0, Queued, Some(round(0)));
        check(Failed, u32::MAX, Queued, Some(round(u32::MAX)));
        check(Queued, 2, Delivered, Some(None));
        check(Queued, 8, Failed, Some(None));
        check(Delivered, 1, InProgress, Some(None));
        check(InProgress, 1, Completed, Some(None));
        check(InProgress, 1, Failed, Some(None));
        check(Queued, 0, Queued, None);
        check(Completed, 1, Queued, None);
        check(InProgress, 1, Queued, None);
        check(Delivered, 1, Queued, None);
    }
}
