//! Where the dispatcher's claims start among each target's queued tasks.
//!
//! On PostgreSQL a delivered task leaves its entry in the queue index until a vacuum, at the
//! head of its target's range, and a claim that starts at the head walks every one of them
//! again. After a claim, a target's queued tasks before the oldest one it leased were leased
//! elsewhere when it looked: the next claim can start there. A task can still come to wait before
//! a floor: this node gives one back (its floor is lowered at once), another node gives one
//! back or dies with its lease, or a task commits late or comes from a node whose clock is
//! behind. For those, floors start [`SLACK`] before the oldest leased task, and a claim
//! without floors runs at least once per interval.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use webhook_domain::model::{ClaimFloor, ClaimedTask, TargetId, Timestamp};

/// How far before the oldest task a claim leased its target's next claim starts: tasks that
/// commit this much later than the tasks received after them, or come from a node whose clock
/// is this much behind, are still found without waiting for a claim without floors.
pub(crate) const SLACK: Duration = Duration::from_secs(1);

/// The floors of one dispatcher's claims.
#[derive(Debug)]
pub(crate) struct Floors {
    by_target: HashMap<TargetId, Timestamp>,
    /// Targets whose floor was lowered since the claim in flight started: its answer must not
    /// raise them again.
    lowered: HashSet<TargetId>,
    /// How often a claim goes without floors, and when the last one did.
    unbounded_every: Duration,
    unbounded_at: Option<Instant>,
}

impl Floors {
    /// Floors that make way for a claim without them at least every `unbounded_every`.
    pub(crate) fn new(unbounded_every: Duration) -> Self {
        Self {
            by_target: HashMap::new(),
            lowered: HashSet::new(),
            unbounded_every,
            unbounded_at: None,
        }
    }

    /// The floors for a claim starting `now`: none when a claim without floors is due, which
    /// forgets them all.
    pub(crate) fn for_claim(&mut self, now: Instant) -> Vec<ClaimFloor> {
        self.lowered.clear();
        let unbounded_due = self
            .unbounded_at
            .is_none_or(|at| now.duration_since(at) >= self.unbounded_every);
        if unbounded_due {
            self.unbounded_at = Some(now);
            self.by_target.clear();
            return Vec::new();
        }
        self.by_target
            .iter()
            .map(|(&target_id, &due_at)| ClaimFloor { target_id, due_at })
            .collect()
    }

    /// Moves the floors of the targets `claimed` holds tasks of to [`SLACK`] before the oldest
    /// of them, unless a task of theirs was given back meanwhile.
    pub(crate) fn claimed(&mut self, claimed: &[ClaimedTask]) {
        let mut oldest: HashMap<TargetId, Timestamp> = HashMap::new();
        for claimed in claimed {
            let task = &claimed.task;
            oldest
                .entry(task.target_id)
                .and_modify(|at| *at = (*at).min(task.next_attempt_at))
                .or_insert(task.next_attempt_at);
        }
        for (target, at) in oldest {
            if !self.lowered.contains(&target) {
                self.by_target.insert(target, at.minus(SLACK));
            }
        }
    }

    /// Lowers the floor of `task`'s target so that the next claim finds it again, given back.
    pub(crate) fn given_back(&mut self, task: &ClaimedTask) {
        let target = task.task.target_id;
        self.lowered.insert(target);
        if let Some(floor) = self.by_target.get_mut(&target) {
            *floor = (*floor).min(task.task.next_attempt_at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use webhook_domain::model::{EndpointUrl, Lease, SealedSecret, Webhook};
    use webhook_store_contract::fixtures;

    /// A webhook of a target of its own.
    fn webhook() -> Webhook {
        let organization = fixtures::organization(fixtures::at(1));
        fixtures::webhook(
            &fixtures::target(&organization, fixtures::at(1)),
            fixtures::at(1),
        )
    }

    fn claimed_at(webhook: &Webhook, micros: i64) -> ClaimedTask {
        let (_, mut task) = fixtures::accepted(webhook, Timestamp::from_unix_micros(micros));
        task.next_attempt_at = Timestamp::from_unix_micros(micros);
        ClaimedTask {
            lease: Lease {
                task_id: task.id,
                token: uuid::Uuid::nil(),
                until: Timestamp::from_unix_micros(micros),
            },
            task,
            endpoint_url: EndpointUrl::parse("https://example.com/").expect("url"),
            signing_secret: SealedSecret::from_bytes(Vec::new()),
        }
    }

    const SECOND: i64 = 1_000_000;

    fn floor_of(floors: &[ClaimFloor], target: TargetId) -> Option<i64> {
        floors
            .iter()
            .find(|floor| floor.target_id == target)
            .map(|floor| floor.due_at.unix_micros())
    }

    #[test]
    fn a_claim_starts_a_second_before_the_oldest_task_the_last_one_leased() {
        let (webhook, other) = (webhook(), webhook());
        let mut floors = Floors::new(Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(floors.for_claim(start), [], "the first claim has no floors");
        floors.claimed(&[
            claimed_at(&webhook, 50 * SECOND),
            claimed_at(&webhook, 40 * SECOND),
            claimed_at(&other, 70 * SECOND),
        ]);
        let next = floors.for_claim(start + Duration::from_millis(1));
        assert_eq!(floor_of(&next, webhook.target_id), Some(39 * SECOND));
        assert_eq!(floor_of(&next, other.target_id), Some(69 * SECOND));
        // A claim that leased nothing of a target leaves its floor.
        floors.claimed(&[claimed_at(&other, 80 * SECOND)]);
        let next = floors.for_claim(start + Duration::from_millis(2));
        assert_eq!(floor_of(&next, webhook.target_id), Some(39 * SECOND));
        assert_eq!(floor_of(&next, other.target_id), Some(79 * SECOND));
    }

    #[test]
    fn a_task_given_back_lowers_its_floor_and_the_claim_in_flight_keeps_it() {
        let webhook = webhook();
        let mut floors = Floors::new(Duration::from_secs(60));
        let start = Instant::now();
        floors.for_claim(start);
        floors.claimed(&[claimed_at(&webhook, 50 * SECOND)]);
        floors.for_claim(start + Duration::from_millis(1));
        // Given back while that claim is in flight: its answer does not raise the floor again.
        floors.given_back(&claimed_at(&webhook, 10 * SECOND));
        floors.claimed(&[claimed_at(&webhook, 60 * SECOND)]);
        let next = floors.for_claim(start + Duration::from_millis(2));
        assert_eq!(floor_of(&next, webhook.target_id), Some(10 * SECOND));
    }

    #[test]
    fn a_claim_goes_without_floors_once_per_interval() {
        let webhook = webhook();
        let every = Duration::from_secs(1);
        let mut floors = Floors::new(every);
        let start = Instant::now();
        floors.for_claim(start);
        floors.claimed(&[claimed_at(&webhook, 50 * SECOND)]);
        assert_eq!(
            floor_of(&floors.for_claim(start + every / 2), webhook.target_id),
            Some(49 * SECOND)
        );
        assert_eq!(floors.for_claim(start + every), [], "the interval is over");
        assert_eq!(
            floors.for_claim(start + every + every / 2),
            [],
            "a claim without floors forgets them"
        );
    }
}
