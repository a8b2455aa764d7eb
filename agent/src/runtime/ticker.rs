//! The tick clock: a timerfd that the kernel fires when the next tick is due, so the daemon
//! wakes once per tick. tokio's timer wheel keeps a timer a second away in a 64 ms slot (a 4 s
//! one when the second crosses such a boundary) and wakes the thread at each slot it moves
//! the timer down from before the deadline itself: 2.4 wake-ups per tick measured, each a
//! context switch for nothing (issue 20). Where no timerfd can be had, tokio's timer serves.
//!
//! Missed ticks behave as tokio's `MissedTickBehavior::Delay`: a tick late by more than a few
//! milliseconds (a stalled host, a long tick) moves the schedule, one interval after it came.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// Lateness that still counts as on schedule, as tokio's `Interval` allows.
const ON_TIME: Duration = Duration::from_millis(5);

pub(super) struct Ticker {
    next: Instant,
    interval: Duration,
    /// `None` when no timerfd could be created: tokio's timer then.
    fd: Option<AsyncFd<OwnedFd>>,
}

impl Ticker {
    /// A ticker whose first tick is due at `first`, then every `interval`.
    pub(super) fn starting_at(first: Instant, interval: Duration) -> Ticker {
        let fd = match timerfd() {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!(error = %e, "No timerfd for the tick clock; tokio's timer instead.");
                None
            }
        };
        Ticker {
            next: first,
            interval,
            fd,
        }
    }

    /// Waits until the next tick is due and returns when it was due. Cancel-safe: the schedule
    /// moves only once a tick is returned.
    pub(super) async fn tick(&mut self) -> Instant {
        loop {
            let now = Instant::now();
            if now >= self.next {
                break;
            }
            let Some(fd) = &self.fd else {
                tokio::time::sleep_until(self.next).await;
                continue;
            };
            if let Err(e) = arm(fd.get_ref(), self.next - now) {
                tracing::debug!(error = %e, "timerfd refused; tokio's timer instead.");
                self.fd = None;
                continue;
            }
            match fd.readable().await {
                Ok(mut ready) => {
                    // One read of the expiry count drains the descriptor (or finds it already
                    // drained: EAGAIN), so its readiness is spent either way. What the count
                    // says does not matter: the loop compares the clock with the schedule.
                    let mut count = [0u8; 8];
                    // SAFETY: the descriptor is open, and `count` is writable for its 8 bytes.
                    let _ = unsafe {
                        libc::read(
                            fd.get_ref().as_raw_fd(),
                            count.as_mut_ptr().cast(),
                            count.len(),
                        )
                    };
                    ready.clear_ready();
                }
                Err(e) => {
                    tracing::debug!(error = %e, "timerfd unreadable; tokio's timer instead.");
                    self.fd = None;
                }
            }
        }
        let due = self.next;
        let now = Instant::now();
        self.next = if now > due + ON_TIME {
            now + self.interval
        } else {
            due + self.interval
        };
        due
    }
}

/// A non-blocking monotonic timerfd, registered with the runtime's poller.
fn timerfd() -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: timerfd_create takes no pointers; a non-negative result is a new descriptor.
    let raw = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, so the descriptor stays open and the
    // same until the `AsyncFd` is dropped.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)
}

/// Fires the timer once, `after` from now (at least a nanosecond: zero would disarm it).
/// std's and tokio's `Instant` are CLOCK_MONOTONIC on Linux, the clock of the descriptor.
fn arm(fd: &OwnedFd, after: Duration) -> std::io::Result<()> {
    let after = after.max(Duration::from_nanos(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(after.subsec_nanos()),
        },
    };
    // SAFETY: the descriptor is open and `spec` is a valid itimerspec; the old value is not
    // asked for.
    let rc = unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ticks_come_on_schedule_from_the_first() {
        let interval = Duration::from_millis(30);
        let start = Instant::now();
        let mut t = Ticker::starting_at(start, interval);
        assert!(t.fd.is_some(), "a timerfd is available on Linux");
        assert_eq!(t.tick().await, start, "the first tick is due at once");
        for i in 1..=3 {
            let due = t.tick().await;
            assert_eq!(due, start + interval * i);
            assert!(Instant::now() >= due, "never early");
        }
    }

    #[tokio::test]
    async fn a_late_tick_moves_the_schedule_instead_of_bursting() {
        let interval = Duration::from_millis(20);
        let start = Instant::now();
        let mut t = Ticker::starting_at(start, interval);
        t.tick().await;
        // Three intervals missed (a long tick).
        std::thread::sleep(interval * 3);
        let late = t.tick().await;
        assert_eq!(
            late,
            start + interval,
            "the missed tick comes once, at once"
        );
        let after = Instant::now();
        let next = t.tick().await;
        assert!(
            next >= after + interval - ON_TIME,
            "the next one is an interval after the late one, not due at once"
        );
    }

    #[tokio::test]
    async fn a_dropped_wait_keeps_the_schedule() {
        let interval = Duration::from_millis(40);
        let start = Instant::now();
        let mut t = Ticker::starting_at(start, interval);
        t.tick().await;
        // select! drops the tick future when another branch wins.
        let cut = tokio::time::timeout(Duration::from_millis(5), t.tick()).await;
        assert!(cut.is_err());
        assert_eq!(t.tick().await, start + interval);
    }
}
