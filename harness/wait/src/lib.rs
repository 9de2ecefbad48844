//! One way to wait for a condition, used everywhere podid waits: a check is polled at a fixed
//! interval until it says `Done`, says `Failed`, or the time runs out. The caller owns the
//! timeout and says what "not yet" looked like, so a timed-out wait reports the last state seen
//! instead of a bare "timed out".

use std::future::Future;
use std::time::{Duration, Instant};

/// What one look at the condition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check<T, S> {
    /// The condition holds; the wait returns this value.
    Done(T),
    /// Not yet; `S` describes what was seen (kept for the timeout error).
    Pending(S),
    /// It never will (a process exited, a request failed for good); stop waiting now.
    Failed(S),
}

/// Why a wait ended without its condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError<S> {
    /// The time ran out; `last` is what the final look saw.
    TimedOut { waited: Duration, last: S },
    /// The check said it cannot succeed.
    Failed { waited: Duration, state: S },
}

impl<S> WaitError<S> {
    /// The state the wait ended on, whichever way it ended.
    pub fn into_state(self) -> S {
        match self {
            Self::TimedOut { last, .. } => last,
            Self::Failed { state, .. } => state,
        }
    }

    /// How long the wait lasted.
    pub fn waited(&self) -> Duration {
        match self {
            Self::TimedOut { waited, .. } | Self::Failed { waited, .. } => *waited,
        }
    }
}

impl<S: std::fmt::Display> std::fmt::Display for WaitError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TimedOut { waited, last } => {
                write!(f, "not so after {:.1}s: {last}", waited.as_secs_f64())
            }
            Self::Failed { waited, state } => {
                write!(f, "gave up after {:.1}s: {state}", waited.as_secs_f64())
            }
        }
    }
}

impl<S: std::fmt::Debug + std::fmt::Display> std::error::Error for WaitError<S> {}

/// How often to look, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Poll {
    /// Look every `interval`, for at most `timeout`.
    pub const fn every(interval: Duration, timeout: Duration) -> Self {
        Self { interval, timeout }
    }
}

/// Polls `check` until it is `Done` (its value is returned), `Failed`, or `poll.timeout` has
/// passed. The check always runs at least once, and never starts after the deadline.
pub async fn until<T, S, F, Fut>(poll: Poll, mut check: F) -> Result<T, WaitError<S>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Check<T, S>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Check::Done(value) => return Ok(value),
            Check::Failed(state) => {
                return Err(WaitError::Failed {
                    waited: started.elapsed(),
                    state,
                });
            }
            Check::Pending(last) => {
                if started.elapsed() + poll.interval > poll.timeout {
                    return Err(WaitError::TimedOut {
                        waited: started.elapsed(),
                        last,
                    });
                }
                tokio::time::sleep(poll.interval).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Poll = Poll::every(Duration::from_millis(1), Duration::from_secs(5));

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let got = until(FAST, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                n if n < 3 => Check::Pending(n),
                n => Check::Done(n),
            }
        })
        .await;
        assert_eq!(got, Ok(3));
    }

    #[tokio::test]
    async fn a_failed_check_stops_at_once() {
        let calls = AtomicU32::new(0);
        let got: Result<(), _> = until(FAST, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Check::Failed("exited")
        })
        .await;
        assert_eq!(got.unwrap_err().into_state(), "exited");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn timing_out_keeps_the_last_state_and_checks_at_least_once() {
        let calls = AtomicU32::new(0);
        let poll = Poll::every(Duration::from_millis(5), Duration::ZERO);
        let got: Result<(), _> = until(poll, || async {
            Check::Pending(calls.fetch_add(1, Ordering::SeqCst))
        })
        .await;
        match got {
            Err(WaitError::TimedOut { last, .. }) => assert_eq!(last, 0),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
