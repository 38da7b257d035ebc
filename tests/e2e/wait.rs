//! Waiting on conditions: poll with a short interval until a deadline. Never a bare sleep.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How often conditions are re-checked.
const INTERVAL: Duration = Duration::from_millis(100);

/// One look at a condition.
pub enum Probe<T> {
    /// The condition holds; stop waiting.
    Ready(T),
    /// Not yet; the text says what was seen, for the timeout message.
    NotYet(String),
}

/// Polls `probe` until it is ready or `timeout` passes. An `Err` from the probe stops the wait at
/// once (for example: the process that should become ready has exited).
pub fn until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Probe<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match probe()? {
            Probe::Ready(value) => return Ok(value),
            Probe::NotYet(seen) => seen,
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}; last seen: {seen}");
        }
        thread::sleep(INTERVAL);
    }
}
