//! [`Timeline`]: the recent events a node records for its cluster state view (admin actions,
//! placements taken over, alarms dropped, hosts joining and leaving), bounded so a busy node
//! keeps only the newest.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use super::state::TimelineEvent;

/// How many events a [`Timeline`] keeps by default.
pub const TIMELINE_CAPACITY: usize = 256;

/// A bounded, thread-safe record of recent events: beyond its capacity the oldest is dropped.
#[derive(Debug)]
pub struct Timeline {
    capacity: usize,
    events: Mutex<VecDeque<TimelineEvent>>,
}

impl Timeline {
    /// A timeline keeping the newest `capacity` events (none if `capacity` is 0).
    pub fn new(capacity: usize) -> Self {
        Timeline {
            capacity,
            events: Mutex::new(VecDeque::with_capacity(capacity.min(TIMELINE_CAPACITY))),
        }
    }

    /// How many events it keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Record `event`, dropping the oldest if the timeline is full.
    pub fn record(&self, event: TimelineEvent) {
        if self.capacity == 0 {
            return;
        }
        // A panic while the lock was held cannot leave the queue half-changed: keep using it.
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        while events.len() >= self.capacity {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// The events it holds, oldest first (in the order they were recorded).
    pub fn snapshot(&self) -> Vec<TimelineEvent> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events.iter().cloned().collect()
    }
}

impl Default for Timeline {
    /// A timeline of [`TIMELINE_CAPACITY`] events.
    fn default() -> Self {
        Timeline::new(TIMELINE_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::EventKind;

    fn event(i: i64) -> TimelineEvent {
        TimelineEvent::new(i, EventKind::AdminAction, format!("h-{i}"), "drained")
    }

    #[test]
    fn the_oldest_events_are_dropped_beyond_capacity() {
        let timeline = Timeline::new(3);
        for i in 0..5 {
            timeline.record(event(i));
        }
        let kept: Vec<i64> = timeline.snapshot().iter().map(|e| e.at_ms).collect();
        assert_eq!(kept, vec![2, 3, 4]);
    }

    #[test]
    fn the_default_keeps_256_events() {
        let timeline = Timeline::default();
        assert_eq!(timeline.capacity(), TIMELINE_CAPACITY);
        for i in 0..300 {
            timeline.record(event(i));
        }
        let kept = timeline.snapshot();
        assert_eq!(kept.len(), 256);
        assert_eq!(kept[0].at_ms, 44);
        assert_eq!(kept[255].at_ms, 299);
    }

    #[test]
    fn a_timeline_of_capacity_zero_keeps_nothing() {
        let timeline = Timeline::new(0);
        timeline.record(event(1));
        assert!(timeline.snapshot().is_empty());
    }

    #[test]
    fn events_recorded_from_many_threads_are_all_kept_up_to_capacity() {
        let timeline = std::sync::Arc::new(Timeline::new(1_000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let timeline = timeline.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        timeline.record(event(t * 100 + i));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("the recording thread finished");
        }
        let mut kept: Vec<i64> = timeline.snapshot().iter().map(|e| e.at_ms).collect();
        kept.sort_unstable();
        assert_eq!(kept, (0..400).collect::<Vec<_>>());
    }
}
