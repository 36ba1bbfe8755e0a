//! Where the app reads the time. A server reads the system clock; tests of the payment pipeline
//! hand in a clock they move, so a renewal, a grace period or a late report can be played out
//! without waiting.
//!
//! The payment pipeline (provider events, checkouts, license URLs) reads [`App::now`]; the
//! other use cases still read the system clock through `crate::now()` until they need a test
//! clock too.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::App;

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl App {
    /// Reads the time from `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.parts_mut().clock = clock;
        self
    }

    /// The time now, by the app's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
