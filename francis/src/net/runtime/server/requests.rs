//! A registered host's requests, one per stream: a store operation (dispatched through the
//! table of [`for_each_store_op!`], its values screened first: session-scoped ones set to the
//! session's own host, lease durations and fetch horizons bounded, names checked) or a
//! certificate renewal.

use std::sync::Arc;
use std::time::Duration;

use serde_bytes::ByteBuf;
use tokio::time::timeout;
use tracing::{Instrument, debug, info};
use wtransport::{RecvStream, SendStream, VarInt};

use super::{RegisteredHost, Shared};
use crate::model::{
    ActorKey, AlarmCompletion, AlarmLease, AlarmRecord, DeadLetter, DeadLetterQuery, FetchAlarms,
    HostInfo, JobInfo, JobRecord, ListStatesOptions, LookupOptions, Placement, StateList, Store,
};
use crate::net::runtime::messages::{
    Convert, RenewRequest, SessionHost, StoreRequest, for_each_store_op, kind, wire_type,
};
use crate::net::serving::{reply, reserve_body};
use crate::net::translate::store_error_to_wire;
use crate::net::wire::{self, ErrorCode, Frame, FrameError, MAX_FRAME_BYTES, WireError};

/// The most alarms one fetch over the runtime protocol may lease.
pub(crate) const MAX_FETCH_BATCH: u32 = 1000;

/// The most frame bytes one session's requests may hold at once (read and not yet answered).
pub(super) const MAX_SESSION_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// The largest arguments of an operation that carries no actor data: keys, names, options.
const MAX_SMALL_ARGS_BYTES: usize = 64 * 1024;

/// The largest encoded arguments operation `op` takes: a whole frame for those that carry
/// actor data (a state, an alarm's or a job's data), [`MAX_SMALL_ARGS_BYTES`] for the rest.
fn max_args_bytes(op: &str) -> usize {
    match op {
        "set_state" | "set_alarm" | "dispatch_job" => MAX_FRAME_BYTES,
        _ => MAX_SMALL_ARGS_BYTES,
    }
}

/// What the runtime screens a request's values against: the session's host, and now.
struct Session<'a> {
    host_id: &'a str,
    /// The store's clock (Unix ms).
    now_ms: i64,
}

/// How the runtime screens the values a worker sends, before the operation runs: one function
/// per mark of [`for_each_store_op!`] (`[session]`, `[lease]`, `[key]`, …). A screen rewrites
/// a value the worker does not choose, bounds one it may choose only within limits, or refuses a
/// malformed one with `bad_request`.
mod screen {
    use std::time::Duration;

    use super::Session;
    use crate::clock::duration_ms;
    use crate::error::validate_name;
    use crate::model::{ActorKey, AlarmRecord, FetchAlarms, JobRecord};
    use crate::net::runtime::messages::SessionHost;
    use crate::net::wire::{ErrorCode, WireError};
    use crate::runtime::{MAX_ALARMS_FETCH_AHEAD, MAX_ALARMS_LEASE_DURATION};

    type Screened = Result<(), WireError>;

    /// A value the runtime scopes to the session's host (`[session]`).
    pub(super) trait SessionScoped {
        /// Make this value act for the session's host only, within the runtime's limits.
        fn scope(&mut self, session: &Session<'_>);
    }

    impl SessionScoped for SessionHost {
        fn scope(&mut self, session: &Session<'_>) {
            session.host_id.clone_into(&mut self.host_id);
        }
    }

    impl SessionScoped for FetchAlarms {
        fn scope(&mut self, session: &Session<'_>) {
            self.hosts = vec![session.host_id.to_owned()];
            self.batch_size = self.batch_size.min(super::MAX_FETCH_BATCH);
            self.lease_duration = self.lease_duration.min(MAX_ALARMS_LEASE_DURATION);
            let furthest = session
                .now_ms
                .saturating_add(duration_ms(MAX_ALARMS_FETCH_AHEAD));
            self.horizon_ms = self.horizon_ms.min(furthest);
        }
    }

    pub(super) fn session(value: &mut impl SessionScoped, session: &Session<'_>) -> Screened {
        value.scope(session);
        Ok(())
    }

    /// A lease duration the worker asks for, capped at [`MAX_ALARMS_LEASE_DURATION`].
    pub(super) fn lease(value: &mut Duration, _: &Session<'_>) -> Screened {
        *value = (*value).min(MAX_ALARMS_LEASE_DURATION);
        Ok(())
    }

    fn checked(what: &'static str, value: &str) -> Screened {
        validate_name(what, value).map_err(|e| WireError::new(ErrorCode::BadRequest, e.to_string()))
    }

    /// An actor's type and ID, checked as hosts check them.
    pub(super) fn key(value: &mut ActorKey, _: &Session<'_>) -> Screened {
        checked("actor type", &value.actor_type)?;
        checked("actor ID", &value.actor_id)
    }

    pub(super) fn actor_type(value: &mut str, _: &Session<'_>) -> Screened {
        checked("actor type", value)
    }

    pub(super) fn alarm_name(value: &mut str, _: &Session<'_>) -> Screened {
        checked("alarm name", value)
    }

    /// An alarm's handler (a method name).
    pub(super) fn alarm(value: &mut AlarmRecord, _: &Session<'_>) -> Screened {
        checked("alarm handler", &value.handler)
    }

    /// A job: its method and idempotency key checked as names, its schedule parsed.
    pub(super) fn job(value: &mut JobRecord, _: &Session<'_>) -> Screened {
        checked("job method", &value.method)?;
        if let Some(key) = &value.idempotency_key {
            checked("idempotency key", key)?;
        }
        let bad = |e: String| WireError::new(ErrorCode::BadRequest, e);
        if let Some(cron) = &value.cron {
            crate::cron::Cron::parse(cron).map_err(|e| bad(e.to_string()))?;
        }
        if let Some(interval) = &value.interval {
            interval
                .parse::<crate::time::Interval>()
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }

    /// An error text a worker reports: cut to what a store keeps.
    pub(super) fn error_text(value: &mut String, _: &Session<'_>) -> Screened {
        let kept = crate::model::operations::bounded_text(
            value,
            crate::model::operations::MAX_RECORDED_ERROR_BYTES,
        )
        .len();
        value.truncate(kept);
        Ok(())
    }
}

/// Serve one request stream of a registered host.
pub(super) async fn handle_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    host: Arc<RegisteredHost>,
    shared: Arc<Shared>,
) {
    let limit = shared.settings.request_timeout;
    let max_request_bytes = shared.settings.max_request_bytes;
    let read = timeout(limit, async {
        let Some(len) = wire::read_frame_len(&mut recv, max_request_bytes).await? else {
            return Ok(None);
        };
        // The session's budget pays for the body before it is read: a host's requests in
        // flight hold at most MAX_SESSION_REQUEST_BYTES of frames, however many streams it opens.
        let reserved = reserve_body(&host.budget, len).await?;
        let frame = wire::read_frame_body(&mut recv, len).await?;
        Ok(Some((frame, reserved)))
    });
    let (frame, _reserved) = match read.await {
        Ok(Ok(Some(read))) => read,
        Ok(Ok(None)) => return,
        Ok(Err(FrameError::Io(e))) => {
            debug!(host = %host.host_id, error = %e, "request stream failed");
            return;
        }
        Ok(Err(e)) => {
            info!(host = %host.host_id, error = %e, "bad request frame");
            recv.stop(VarInt::from_u32(0));
            reply(&mut send, Err(e.to_wire_error())).await;
            return;
        }
        Err(_) => {
            recv.stop(VarInt::from_u32(0));
            let error = WireError::new(
                ErrorCode::DeadlineExceeded,
                format!("no request frame within {limit:?}"),
            );
            reply(&mut send, Err(error)).await;
            return;
        }
    };
    drop(recv);
    let _running = shared.in_flight.enter();
    let started = std::time::Instant::now();
    let (kind, span) = match frame.kind.as_str() {
        kind::STORE => (
            kind::STORE,
            tracing::debug_span!(
                "runtime.request",
                otel.kind = "server",
                "francis.rpc.kind" = kind::STORE,
                "francis.host.id" = %host.host_id,
            ),
        ),
        kind::RENEW => (
            kind::RENEW,
            tracing::debug_span!(
                "runtime.request",
                otel.kind = "server",
                "francis.rpc.kind" = kind::RENEW,
                "francis.host.id" = %host.host_id,
            ),
        ),
        _ => ("unknown", tracing::Span::none()),
    };
    crate::telemetry::context::set_remote_parent(&span, frame.trace_context.as_deref());
    let result = serve_request(frame, &host, &shared).instrument(span).await;
    crate::telemetry::metrics::metrics()
        .runtime_requests
        .with(&["server", kind, if result.is_ok() { "ok" } else { "error" }])
        .observe(started.elapsed());
    reply(&mut send, result).await;
}

/// Answer one request frame of a registered host.
async fn serve_request(
    frame: Frame,
    host: &RegisteredHost,
    shared: &Shared,
) -> Result<Frame, WireError> {
    match frame.kind.as_str() {
        kind::STORE => match frame.decode::<StoreRequest>() {
            Ok(request) => store_request(request, host, shared).await,
            Err(e) => Err(e.to_wire_error()),
        },
        kind::RENEW => match frame.decode::<RenewRequest>() {
            Ok(request) => {
                let limit = shared.settings.store_timeout;
                timeout(limit, shared.admission.renew(&host.host_id, &request.wlpub))
                    .await
                    .unwrap_or_else(|_| {
                        Err(WireError::new(
                            ErrorCode::Internal,
                            "the store did not confirm the registration in time",
                        ))
                    })
                    .and_then(|r| Frame::new(&r).map_err(|e| e.to_wire_error()))
            }
            Err(e) => Err(e.to_wire_error()),
        },
        other => Err(WireError::new(
            ErrorCode::BadRequest,
            format!("unknown request kind {other:?}"),
        )),
    }
}

/// Run one store operation for the session's host, bounded by the store timeout.
async fn store_request(
    request: StoreRequest,
    host: &RegisteredHost,
    shared: &Shared,
) -> Result<Frame, WireError> {
    let op = request.op.as_str();
    let max = max_args_bytes(op);
    if request.args.len() > max {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            format!(
                "the arguments of {op} are {} bytes; at most {max} are accepted",
                request.args.len()
            ),
        ));
    }
    let store = shared.admission.store().as_ref();
    let session = Session {
        host_id: &host.host_id,
        now_ms: store.options().clock.now_ms(),
    };
    let limit = shared.settings.store_timeout;
    let reply = timeout(limit, dispatch(store, &session, op, &request.args))
        .await
        .unwrap_or_else(|_| {
            Err(WireError::new(
                ErrorCode::Internal,
                format!("the store did not answer {op} in time"),
            ))
        });
    debug!(host = %host.host_id, op, ok = reply.is_ok(), "store operation");
    if op == "unregister_host" {
        info!(host = %host.host_id, "host unregistered");
    }
    reply
}

/// The runtime's side of every line of the table: decode the arguments as their wire types,
/// scope the `[session]` ones to the session's host, run the operation, encode its result.
macro_rules! dispatch {
    ($(
        $op:ident ( $( $param:ident : $ty:ty $(=> $wire:ty)? $([$scope:ident])? ),* $(,)? )
            -> $ret:ty $(=> $ret_wire:ty)? ;
    )*) => {
        /// Run store operation `op` with its encoded `args` for the session's host; the reply
        /// frame.
        async fn dispatch(
            store: &dyn Store,
            session: &Session<'_>,
            op: &str,
            args: &[u8],
        ) -> Result<Frame, WireError> {
            match op {
                $(stringify!($op) => {
                    #[allow(unused_mut)]
                    let ($(mut $param,)*): ($(wire_type!($ty $(=> $wire)?),)*) =
                        wire::decode_message(args).map_err(|e| bad_arguments(op, &e))?;
                    $($(screen::$scope(&mut $param, session)?;)?)*
                    let result: $ret = store
                        .$op($(Convert::convert(&$param)),*)
                        .await
                        .map_err(|e| store_error_to_wire(&e))?;
                    let reply: wire_type!($ret $(=> $ret_wire)?) = Convert::convert(result);
                    Frame::with_payload(kind::STORE_RESPONSE, &reply)
                        .map_err(|e| e.to_wire_error())
                })*
                other => Err(WireError::new(
                    ErrorCode::BadRequest,
                    format!("unknown store operation {other:?}"),
                )),
            }
        }
    };
}

for_each_store_op!(dispatch);

fn bad_arguments(op: &str, e: &rmp_serde::decode::Error) -> WireError {
    WireError::new(
        ErrorCode::BadRequest,
        format!("malformed arguments of {op}: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SESSION: Session<'static> = Session {
        host_id: "session-host",
        now_ms: 1_000_000,
    };

    #[test]
    fn session_scoped_values_act_for_the_session_host_only() {
        let mut host = SessionHost::default();
        screen::session(&mut host, &SESSION).unwrap();
        let host_id: &str = Convert::convert(&host);
        assert_eq!(host_id, "session-host");

        let mut request = FetchAlarms {
            hosts: Vec::new(),
            horizon_ms: 5,
            lease_duration: Duration::from_secs(20),
            batch_size: u32::MAX,
        };
        screen::session(&mut request, &SESSION).unwrap();
        assert_eq!(request.hosts, vec!["session-host".to_owned()]);
        assert_eq!(request.batch_size, MAX_FETCH_BATCH);
        assert_eq!(
            (request.horizon_ms, request.lease_duration),
            (5, Duration::from_secs(20)),
            "values within the limits are kept"
        );
    }

    #[test]
    fn a_worker_cannot_lease_alarms_for_a_year_or_fetch_them_a_year_ahead() {
        let year = Duration::from_secs(365 * 24 * 3600);
        let mut request = FetchAlarms {
            hosts: Vec::new(),
            horizon_ms: i64::MAX,
            lease_duration: year,
            batch_size: 1,
        };
        screen::session(&mut request, &SESSION).unwrap();
        assert_eq!(
            request.lease_duration,
            crate::runtime::MAX_ALARMS_LEASE_DURATION
        );
        assert_eq!(
            request.horizon_ms,
            SESSION.now_ms + crate::clock::duration_ms(crate::runtime::MAX_ALARMS_FETCH_AHEAD)
        );
        let mut renewal = year;
        screen::lease(&mut renewal, &SESSION).unwrap();
        assert_eq!(renewal, crate::runtime::MAX_ALARMS_LEASE_DURATION);
    }
}
