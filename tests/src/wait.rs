//! Polling for a state that has no event to wait on (a server's API, systemd's properties),
//! bounded by a deadline: one loop instead of one per test.

use std::time::Duration;

use tokio::time::Instant;

/// Calls `ready` every `every` until it holds; after `timeout` panics with `what` and whatever
/// `context` adds (a server's log, the last value seen).
pub fn poll_until(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut ready: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}{}",
            context()
        );
        std::thread::sleep(every);
    }
}
