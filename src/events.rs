//! Progress events: resource code reports what it is doing through an `Observer`, never by
//! printing, so the CLI decides how (and whether) to show it.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A plan step began.
    Started {
        id: String,
        action: String,
    },
    /// A long wait is still going on (status as AWS reports it).
    Waiting {
        id: String,
        what: String,
        status: String,
        elapsed: Duration,
    },
    /// A transient AWS error; the call is retried after `delay`.
    Retrying {
        id: String,
        what: String,
        error: String,
        attempt: u32,
        delay: Duration,
    },
    /// A note worth showing (e.g. a resharding step).
    Note {
        id: String,
        message: String,
    },
    Finished {
        id: String,
        elapsed: Duration,
    },
    Failed {
        id: String,
        error: String,
    },
    /// Not run because a step it depends on failed.
    Skipped {
        id: String,
        because: String,
    },
}

pub trait Observer: Send + Sync {
    fn event(&self, e: Event);
}

/// Discards every event.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _e: Event) {}
}

/// Collects events (tests).
#[derive(Default)]
pub struct Collect(pub std::sync::Mutex<Vec<Event>>);

impl Observer for Collect {
    fn event(&self, e: Event) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }
}
