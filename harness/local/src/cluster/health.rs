//! NMI's and MIC's `/healthz`: reading one answer, and waiting for a wanted one. Both answer
//! 200 once their probe server listens, with the body `Active` once they serve (NMI: iptables
//! installed; MIC: leading with caches synced) and `Not Active` before (a MIC follower stays so).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use podid_netns::NetNamespace;
use podid_wait::{Check, Poll, until};

use crate::LocalError;
use crate::probe::get_in_namespace;
use crate::process::{ChildProcess, log_tail};

/// How long one `/healthz` request may take.
const HEALTHZ_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(100);

/// The body of a serving component's `/healthz`.
pub const ACTIVE: &str = "Active";

/// One instance's `/healthz` answer, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReading {
    /// Which instance (`nmi@node-0`, `mic#1 (leader)`).
    pub instance: String,
    /// Status and body, or why nothing answered (not running, refused, timed out).
    pub answer: Result<(u16, String), String>,
}

/// `GET /healthz` on `port` of the namespace's loopback.
pub(super) async fn read_healthz(netns: &NetNamespace, port: u16) -> Result<(u16, String), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    get_in_namespace(netns, addr, "/healthz", HEALTHZ_TIMEOUT).await
}

/// Whether an answer is 200 `Active`.
pub(super) fn is_active(answer: &Result<(u16, String), String>) -> bool {
    matches!(answer, Ok((200, body)) if body.trim() == ACTIVE)
}

/// What a started instance must answer before it counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wanted {
    /// 200 `Active`.
    Active,
    /// Any 200 (a MIC replica that may end up following).
    Answering,
}

/// Polls `/healthz` on `port` inside `netns` until it answers as `wanted`; fails at once when the
/// process exits, and on timeout with the end of its log.
pub(super) async fn wait_healthz(
    component: &str,
    netns: &NetNamespace,
    port: u16,
    process: &mut ChildProcess,
    wanted: Wanted,
    timeout: Duration,
) -> Result<(), LocalError> {
    let answered = until(Poll::every(POLL, timeout), || {
        let exited = process.exited();
        async move {
            if let Some(status) = exited {
                return Check::Failed(format!("exited with {status}"));
            }
            let answer = read_healthz(netns, port).await;
            let done = match wanted {
                Wanted::Active => is_active(&answer),
                Wanted::Answering => matches!(answer, Ok((200, _))),
            };
            match answer {
                _ if done => Check::Done(()),
                Ok((status, body)) => {
                    Check::Pending(format!("/healthz answered {status} {body:?}"))
                }
                Err(e) => Check::Pending(e),
            }
        }
    })
    .await;
    answered.map_err(|e| LocalError::NotReady {
        component: component.to_string(),
        waited_secs: e.waited().as_secs(),
        reason: e.into_state(),
        log: process.log().to_path_buf(),
        log_tail: log_tail(process.log(), 30),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_200_active_is_active() {
        assert!(is_active(&Ok((200, "Active".into()))));
        assert!(is_active(&Ok((200, "Active\n".into()))));
        assert!(!is_active(&Ok((200, "Not Active".into()))));
        assert!(!is_active(&Ok((500, "Active".into()))));
        assert!(!is_active(&Err("connection refused".into())));
    }
}
