//! The framed, versioned, size-capped wire protocol spoken between Francis nodes.
//!
//! A frame is `u32 big-endian length ‖ MessagePack body`. The body is a map
//! `{v: u16 protocol version, k: message kind, p: bin payload}` ([`Frame`]) whose payload is the
//! MessagePack encoding (string keys, [`rmp_serde::to_vec_named`]) of the kind-specific struct.
//! Byte fields travel as MessagePack `bin` (`serde_bytes`), and every struct decodes with
//! `#[serde(default)]` so a newer peer may add fields.
//!
//! Limits: a frame body is at most [`MAX_FRAME_BYTES`] (16 MiB) and a payload at most
//! [`MAX_PAYLOAD_BYTES`] (16 MiB − 64 KiB). The reader rejects a larger length prefix *before*
//! allocating anything, and grows its buffer only as bytes actually arrive, so a peer cannot make
//! it reserve 16 MiB by sending four bytes.
//!
//! One request and one response per stream: there are no correlation IDs in a frame.
//! Every error reply uses kind [`kind::ERROR`] with a [`WireError`] payload, so a receiver can
//! classify a reply before decoding it.
//!
//! Message keys follow the upstream Go implementation's names (`hostId`, `type`, `reqId`, …)
//! so that interoperability stays possible; it is not a tested goal.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version this node speaks, sent in every frame's `v`.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest accepted frame body (what follows the 4-byte length prefix): 16 MiB.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Largest accepted frame payload: 16 MiB − 64 KiB, leaving room for the rest of the frame.
pub const MAX_PAYLOAD_BYTES: usize = MAX_FRAME_BYTES - 64 * 1024;

/// How much buffer the reader reserves up front; it grows past this only as bytes arrive.
const INITIAL_READ_CAPACITY: usize = 64 * 1024;

/// How deeply a protocol message's values may nest. Messages are flat records; actor payloads
/// travel inside them as bytes and have their own limit
/// ([`crate::model::payload::MAX_PAYLOAD_DEPTH`]).
pub const MAX_MESSAGE_DEPTH: usize = 32;

/// Decode a protocol message (MessagePack) under [`MAX_MESSAGE_DEPTH`].
pub fn decode_message<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    crate::model::payload::decode_msgpack(bytes, MAX_MESSAGE_DEPTH)
}

/// Message kinds (the frame's `k`).
pub mod kind {
    /// Host → host: invoke a method on an actor the target host owns.
    pub const INVOKE: &str = "invoke.actor";
    /// The successful reply to [`INVOKE`].
    pub const INVOKE_RESPONSE: &str = "invoke.actor.response";
    /// Any failed request, with a [`super::WireError`] payload.
    pub const ERROR: &str = "error";
    /// Host or runtime → host: an operator's action on the target host.
    pub const ADMIN: &str = "admin.host";
    /// The successful reply to [`ADMIN`].
    pub const ADMIN_RESPONSE: &str = "admin.host.response";
}

/// A struct that travels as the payload of a frame of a fixed kind.
pub trait Message: Serialize + DeserializeOwned {
    /// The frame kind (`k`) this message travels under.
    const KIND: &'static str;
}

/// Errors reading, writing, encoding or decoding frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A length prefix or payload over the limit; nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The announced (or encoded) length.
        len: usize,
        /// The limit that applied.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("truncated frame: expected {expected} bytes but the stream ended after {got}")]
    Truncated {
        /// Bytes the frame (or its length prefix) announced.
        expected: usize,
        /// Bytes received before the end of the stream.
        got: usize,
    },
    /// The bytes are not a valid frame or payload.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The frame carries a protocol version this node does not speak.
    #[error("unsupported protocol version {got} (this node speaks version {supported})")]
    ProtocolVersion {
        /// The version in the frame (0 when it was missing).
        got: u16,
        /// [`PROTOCOL_VERSION`].
        supported: u16,
    },
    /// The frame's kind is not the one the reader expected.
    #[error("unexpected message kind {got:?} (expected {expected:?})")]
    UnexpectedKind {
        /// The kind the reader wanted.
        expected: &'static str,
        /// The kind that arrived.
        got: String,
    },
    /// A message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The underlying stream failed.
    #[error("stream i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The error code to answer a peer with when its frame failed with this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } => ErrorCode::TooLarge,
            FrameError::Truncated { .. }
            | FrameError::Malformed(_)
            | FrameError::UnexpectedKind { .. } => ErrorCode::BadRequest,
            FrameError::ProtocolVersion { .. } => ErrorCode::ProtocolVersion,
            FrameError::Encode(_) => ErrorCode::Internal,
            FrameError::Io(_) => ErrorCode::TransportFailure,
        }
    }

    /// This error as a [`WireError`] to send back to the peer.
    pub fn to_wire_error(&self) -> WireError {
        WireError::new(self.code(), self.to_string())
    }
}

/// One frame, decoded: the sender's protocol version, the message kind and its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The sender's protocol version.
    #[serde(rename = "v", default)]
    pub version: u16,
    /// The message kind, see [`kind`].
    #[serde(rename = "k", default)]
    pub kind: String,
    /// The MessagePack-encoded kind-specific payload (may be empty).
    #[serde(
        rename = "p",
        default,
        with = "serde_bytes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub payload: Vec<u8>,
    /// The W3C `traceparent` of the span that sent a request, when traces are exported, so
    /// the span serving it joins the same trace. Ignored when longer than
    /// [`MAX_TRACEPARENT_LEN`](crate::telemetry::context::MAX_TRACEPARENT_LEN).
    #[serde(rename = "tc", default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<String>,
}

impl Frame {
    /// Wraps `message` in a frame of its kind at [`PROTOCOL_VERSION`].
    pub fn new<M: Message>(message: &M) -> Result<Self, FrameError> {
        Self::with_payload(M::KIND, message)
    }

    /// A frame of `kind` whose payload is `value` (MessagePack, named fields), at
    /// [`PROTOCOL_VERSION`].
    pub fn with_payload<T: Serialize + ?Sized>(kind: &str, value: &T) -> Result<Self, FrameError> {
        let payload =
            rmp_serde::to_vec_named(value).map_err(|e| FrameError::Encode(e.to_string()))?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(FrameError::TooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        Ok(Frame {
            version: PROTOCOL_VERSION,
            kind: kind.to_owned(),
            payload,
            trace_context: None,
        })
    }

    /// This frame carrying the current span's trace context (a request frame, sent to
    /// another process), when traces are exported.
    pub fn traced(mut self) -> Self {
        self.trace_context = crate::telemetry::context::current_traceparent();
        self
    }

    /// Decodes the payload as `M`, checking that the kind matches.
    /// An empty payload decodes as `M` with every field defaulted.
    pub fn decode<M: Message>(&self) -> Result<M, FrameError> {
        self.payload_as(M::KIND)
    }

    /// Decodes the payload as `T`, checking that the frame is of `kind`. An empty payload
    /// decodes as an empty map.
    pub fn payload_as<T: DeserializeOwned>(&self, kind: &'static str) -> Result<T, FrameError> {
        if self.kind != kind {
            return Err(FrameError::UnexpectedKind {
                expected: kind,
                got: self.kind.clone(),
            });
        }
        // An omitted payload is an empty map: every field takes its default.
        let bytes: &[u8] = if self.payload.is_empty() {
            &[0x80]
        } else {
            &self.payload
        };
        decode_message(bytes)
            .map_err(|e| FrameError::Malformed(format!("{} payload: {e}", self.kind)))
    }

    /// True when this is an error reply ([`kind::ERROR`]).
    pub fn is_error(&self) -> bool {
        self.kind == kind::ERROR
    }
}

/// Encodes a frame: `be32(len) ‖ msgpack(frame)`.
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, FrameError> {
    let body = rmp_serde::to_vec_named(frame).map_err(|e| FrameError::Encode(e.to_string()))?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
        len: body.len(),
        max: MAX_FRAME_BYTES,
    })?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Decodes a frame body (the bytes after the length prefix) and checks its version and kind.
pub fn decode_frame(body: &[u8]) -> Result<Frame, FrameError> {
    let frame: Frame =
        decode_message(body).map_err(|e| FrameError::Malformed(format!("frame: {e}")))?;
    if frame.version != PROTOCOL_VERSION {
        return Err(FrameError::ProtocolVersion {
            got: frame.version,
            supported: PROTOCOL_VERSION,
        });
    }
    if frame.kind.is_empty() {
        return Err(FrameError::Malformed("frame has no kind".into()));
    }
    Ok(frame)
}

/// Writes one frame and flushes.
pub async fn write_frame<W>(writer: &mut W, frame: &Frame) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let frame = encode_frame(frame)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

/// Reads one frame whose body may be at most `max_len` bytes (never more than
/// [`MAX_FRAME_BYTES`]).
///
/// Returns `Ok(None)` when the stream ends cleanly before the first byte of a frame. A length
/// prefix over the limit is refused with [`FrameError::TooLarge`] before any allocation, and an
/// frame at another protocol version with [`FrameError::ProtocolVersion`].
pub async fn read_frame<R>(reader: &mut R, max_len: usize) -> Result<Option<Frame>, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    match read_frame_len(reader, max_len).await? {
        Some(len) => read_frame_body(reader, len).await.map(Some),
        None => Ok(None),
    }
}

/// Reads a frame's length prefix, so a server can reserve what the body needs before reading
/// it; [`read_frame_body`] reads the rest. `Ok(None)` when the stream ends cleanly first; a
/// length over `max_len` (or [`MAX_FRAME_BYTES`]) is [`FrameError::TooLarge`].
pub async fn read_frame_len<R>(reader: &mut R, max_len: usize) -> Result<Option<usize>, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        let n = reader.read(&mut prefix[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated { expected: 4, got });
        }
        got += n;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    let max = max_len.min(MAX_FRAME_BYTES);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if len == 0 {
        return Err(FrameError::Malformed("empty frame".into()));
    }
    Ok(Some(len))
}

/// Reads and decodes the `len`-byte body of a frame whose prefix [`read_frame_len`] read.
pub async fn read_frame_body<R>(reader: &mut R, len: usize) -> Result<Frame, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut body = Vec::with_capacity(len.min(INITIAL_READ_CAPACITY));
    let mut limited = AsyncReadExt::take(&mut *reader, len as u64);
    limited.read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(FrameError::Truncated {
            expected: len,
            got: body.len(),
        });
    }
    decode_frame(&body)
}

/// Stable error codes, sent as snake_case strings.
///
/// An unknown code from a newer peer decodes as [`ErrorCode::Internal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ErrorCode {
    /// An unexpected failure on the remote side.
    #[default]
    Internal,
    /// The request was malformed or invalid.
    BadRequest,
    /// The caller is not allowed to make this request.
    Unauthorized,
    /// The peers do not share a protocol version.
    ProtocolVersion,
    /// The call ran out of time.
    DeadlineExceeded,
    /// The call was canceled.
    Canceled,
    /// The target host is shutting down; retry elsewhere.
    HostDraining,
    /// The host at this address is not the host the caller meant.
    HostMismatch,
    /// A transient failure; retry later.
    RetryLater,
    /// The target host is at its concurrency limit.
    Overloaded,
    /// No host can run this actor.
    NoHost,
    /// The target host does not host this actor.
    ActorNotHosted,
    /// The actor is not active (and the call asked for active actors only).
    ActorNotActive,
    /// The actor is halted.
    ActorHalted,
    /// The target host does not support this actor type.
    ActorTypeUnsupported,
    /// The actor has no such method.
    UnknownMethod,
    /// The actor's method failed.
    InvokeFailed,
    /// The transport failed after the request was sent; the call may have run.
    TransportFailure,
    /// A frame or payload exceeded the size limit.
    TooLarge,
    /// The host's registration is unknown or expired; it must register again.
    HostUnregistered,
    /// Another healthy host is registered at this address.
    AddressInUse,
    /// The cluster already holds as many healthy hosts as its `maxHosts` admits.
    ClusterFull,
    /// The registration's `maxHosts` differs from the one the cluster's healthy hosts joined
    /// with.
    MaxHostsMismatch,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::Internal,
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::ProtocolVersion,
        ErrorCode::DeadlineExceeded,
        ErrorCode::Canceled,
        ErrorCode::HostDraining,
        ErrorCode::HostMismatch,
        ErrorCode::RetryLater,
        ErrorCode::Overloaded,
        ErrorCode::NoHost,
        ErrorCode::ActorNotHosted,
        ErrorCode::ActorNotActive,
        ErrorCode::ActorHalted,
        ErrorCode::ActorTypeUnsupported,
        ErrorCode::UnknownMethod,
        ErrorCode::InvokeFailed,
        ErrorCode::TransportFailure,
        ErrorCode::TooLarge,
        ErrorCode::HostUnregistered,
        ErrorCode::AddressInUse,
        ErrorCode::ClusterFull,
        ErrorCode::MaxHostsMismatch,
    ];

    /// The stable wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Internal => "internal",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::ProtocolVersion => "protocol_version",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::Canceled => "canceled",
            ErrorCode::HostDraining => "host_draining",
            ErrorCode::HostMismatch => "host_mismatch",
            ErrorCode::RetryLater => "retry_later",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::NoHost => "no_host",
            ErrorCode::ActorNotHosted => "actor_not_hosted",
            ErrorCode::ActorNotActive => "actor_not_active",
            ErrorCode::ActorHalted => "actor_halted",
            ErrorCode::ActorTypeUnsupported => "actor_type_unsupported",
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::InvokeFailed => "invoke_failed",
            ErrorCode::TransportFailure => "transport_failure",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::HostUnregistered => "host_unregistered",
            ErrorCode::AddressInUse => "address_in_use",
            ErrorCode::ClusterFull => "cluster_full",
            ErrorCode::MaxHostsMismatch => "max_hosts_mismatch",
        }
    }

    /// Parses a wire string; `None` for a code this node does not know.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// True for codes after which the caller should invalidate placement and retry after a
    /// delay: `retry_later`, `overloaded`, `host_draining`, `actor_halted`, `host_mismatch`,
    /// `actor_not_hosted`.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::RetryLater
                | ErrorCode::Overloaded
                | ErrorCode::HostDraining
                | ErrorCode::ActorHalted
                | ErrorCode::HostMismatch
                | ErrorCode::ActorNotHosted
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(ErrorCode::parse(&s).unwrap_or(ErrorCode::Internal))
    }
}

/// The payload of every [`kind::ERROR`] reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(default)]
#[error("{code}: {message}")]
pub struct WireError {
    /// What went wrong, as a stable code.
    pub code: ErrorCode,
    /// A human-readable explanation.
    #[serde(rename = "msg", skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When set, how long the caller should wait before retrying.
    #[serde(rename = "retry", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// An actor's own encoded error value, so it keeps its type across hosts.
    #[serde(with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    pub payload: Option<Vec<u8>>,
}

impl WireError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
            retry_after_ms: None,
            payload: None,
        }
    }

    /// Sets the retry hint.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after_ms = Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Attaches an actor's encoded error value.
    pub fn with_payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = Some(payload);
        self
    }

    /// The retry hint as a duration.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms.map(Duration::from_millis)
    }

    /// Shorthand for `self.code.retryable()`.
    pub fn retryable(&self) -> bool {
        self.code.retryable()
    }
}

impl Message for WireError {
    const KIND: &'static str = kind::ERROR;
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Host → host: invoke `method` on actor `actor_type/actor_id`, owned by `target_host_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InvokeRequest {
    /// The host ID placement resolved; the caller pins the peer's certificate to it and the
    /// owner rejects a request meant for another host.
    #[serde(rename = "hostId")]
    pub target_host_id: String,
    /// The actor type.
    #[serde(rename = "type")]
    pub actor_type: String,
    /// The actor ID.
    #[serde(rename = "id")]
    pub actor_id: String,
    /// The method name.
    pub method: String,
    /// Fail with `actor_not_active` instead of activating the actor.
    #[serde(rename = "activeOnly", skip_serializing_if = "is_false")]
    pub active_only: bool,
    /// A read-only turn (shared lock).
    #[serde(rename = "readOnly", skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// A UUIDv4 per logical call, reused on retry so the owner can coalesce duplicates (of the
    /// same calling host, actor and method). The owner refuses a request ID that is not a UUID.
    #[serde(rename = "reqId")]
    pub request_id: String,
    /// The encoded argument.
    #[serde(with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<u8>,
    /// How long the caller waits for the reply, in milliseconds, counted from when it sent the
    /// request; the owner gives up after it too (`deadline_exceeded`). `None`: no deadline.
    #[serde(rename = "timeoutMs", skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl InvokeRequest {
    /// A request with a fresh UUIDv4 request ID, both flags off and no deadline.
    pub fn new(
        target_host_id: impl Into<String>,
        actor_type: impl Into<String>,
        actor_id: impl Into<String>,
        method: impl Into<String>,
        data: Vec<u8>,
    ) -> Self {
        InvokeRequest {
            target_host_id: target_host_id.into(),
            actor_type: actor_type.into(),
            actor_id: actor_id.into(),
            method: method.into(),
            active_only: false,
            read_only: false,
            request_id: uuid::Uuid::new_v4().to_string(),
            data,
            timeout_ms: None,
        }
    }
}

impl Message for InvokeRequest {
    const KIND: &'static str = kind::INVOKE;
}

/// The successful reply to an [`InvokeRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InvokeResponse {
    /// The encoded return value.
    #[serde(with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<u8>,
}

impl Message for InvokeResponse {
    const KIND: &'static str = kind::INVOKE_RESPONSE;
}

/// Host or runtime → host: an operator's action on the target host. The node that serves the
/// operations API authorized it; the target checks only that it comes from its cluster (a host
/// or a runtime identity of the cluster CA) and is meant for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRequest {
    /// The host it is meant for; the caller pins the peer's certificate to it.
    #[serde(rename = "hostId")]
    pub target_host_id: String,
    /// What to do.
    pub action: crate::cluster::actions::HostOrder,
}

impl Message for AdminRequest {
    const KIND: &'static str = kind::ADMIN;
}

/// The successful reply to an [`AdminRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminResponse {
    /// How many actors it deactivated (or began to).
    pub halted: u64,
}

impl Message for AdminResponse {
    const KIND: &'static str = kind::ADMIN_RESPONSE;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    fn sample_request() -> InvokeRequest {
        let mut req = InvokeRequest::new("host-1", "counter", "alice", "increment", vec![1, 2, 3]);
        req.read_only = true;
        req
    }

    #[tokio::test]
    async fn request_round_trips_through_a_frame() {
        let req = sample_request();
        let mut buf = Vec::new();
        write_frame(&mut buf, &Frame::new(&req).unwrap())
            .await
            .unwrap();
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        assert_eq!(len, buf.len() - 4);

        let mut reader = &buf[..];
        let env = read_frame(&mut reader, MAX_FRAME_BYTES)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(env.version, PROTOCOL_VERSION);
        assert_eq!(env.kind, kind::INVOKE);
        let back: InvokeRequest = env.decode().unwrap();
        assert_eq!(back, req);
        // Clean EOF after the frame.
        assert!(
            read_frame(&mut reader, MAX_FRAME_BYTES)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn error_round_trips_with_payload_and_retry() {
        let err = WireError::new(ErrorCode::Overloaded, "busy")
            .with_retry_after(Duration::from_millis(100))
            .with_payload(vec![0xde, 0xad]);
        let frame = encode_frame(&Frame::new(&err).unwrap()).unwrap();
        let env = read_frame(&mut &frame[..], MAX_FRAME_BYTES)
            .await
            .unwrap()
            .unwrap();
        assert!(env.is_error());
        let back: WireError = env.decode().unwrap();
        assert_eq!(back, err);
        assert!(back.retryable());
        assert_eq!(back.retry_after(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn bytes_travel_as_msgpack_bin() {
        let resp = InvokeResponse { data: vec![7; 300] };
        let payload = rmp_serde::to_vec_named(&resp).unwrap();
        // fixmap(1), fixstr "data", bin16 (0xc5) of 300 bytes.
        assert_eq!(payload[0], 0x81);
        assert_eq!(&payload[1..6], b"\xa4data");
        assert_eq!(payload[6], 0xc5);
    }

    #[test]
    fn error_codes_are_stable_snake_case() {
        for code in ErrorCode::ALL {
            let bytes = rmp_serde::to_vec(&code).unwrap();
            let back: ErrorCode = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, code);
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::HostMismatch.as_str(), "host_mismatch");
        let retryable: Vec<_> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.retryable())
            .collect();
        assert_eq!(
            retryable,
            vec![
                ErrorCode::HostDraining,
                ErrorCode::HostMismatch,
                ErrorCode::RetryLater,
                ErrorCode::Overloaded,
                ErrorCode::ActorNotHosted,
                ErrorCode::ActorHalted,
            ]
        );
        // A code from a newer peer degrades to `internal`.
        let bytes = rmp_serde::to_vec("brand_new_code").unwrap();
        let back: ErrorCode = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, ErrorCode::Internal);
    }

    #[test]
    fn decoding_tolerates_missing_and_unknown_fields() {
        #[derive(Serialize)]
        struct Newer<'a> {
            #[serde(rename = "type")]
            actor_type: &'a str,
            future_field: u64,
        }
        let payload = rmp_serde::to_vec_named(&Newer {
            actor_type: "counter",
            future_field: 9,
        })
        .unwrap();
        let env = Frame {
            version: PROTOCOL_VERSION,
            kind: kind::INVOKE.into(),
            payload,
            trace_context: None,
        };
        let req: InvokeRequest = env.decode().unwrap();
        assert_eq!(req.actor_type, "counter");
        assert!(req.method.is_empty() && req.data.is_empty() && !req.active_only);

        // An omitted payload decodes as all defaults.
        let env = Frame {
            version: PROTOCOL_VERSION,
            kind: kind::INVOKE_RESPONSE.into(),
            payload: Vec::new(),
            trace_context: None,
        };
        assert_eq!(
            env.decode::<InvokeResponse>().unwrap(),
            InvokeResponse::default()
        );
        // Wrong kind is refused.
        assert!(matches!(
            env.decode::<InvokeRequest>(),
            Err(FrameError::UnexpectedKind { .. })
        ));
    }

    /// A reader that hands out a fixed prefix and then records how many bytes were asked for.
    struct HugeClaim {
        prefix: Vec<u8>,
        pos: usize,
        max_requested: usize,
    }

    impl AsyncRead for HugeClaim {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = &mut *self;
            this.max_requested = this.max_requested.max(buf.remaining());
            let rest = &this.prefix[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn oversized_length_is_refused_before_allocating() {
        let mut reader = HugeClaim {
            prefix: u32::MAX.to_be_bytes().to_vec(),
            pos: 0,
            max_requested: 0,
        };
        let err = read_frame(&mut reader, MAX_FRAME_BYTES).await.unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, max } if len == u32::MAX as usize && max == MAX_FRAME_BYTES),
            "{err}"
        );
        assert_eq!(err.code(), ErrorCode::TooLarge);
        // Only the 4-byte prefix was ever requested: no body buffer was set up.
        assert!(reader.max_requested <= 4, "{}", reader.max_requested);

        // A caller-supplied lower cap applies too.
        let frame = encode_frame(&Frame::new(&sample_request()).unwrap()).unwrap();
        let err = read_frame(&mut &frame[..], 8).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 8, .. }), "{err}");
    }

    #[tokio::test]
    async fn a_huge_claim_with_few_bytes_does_not_reserve_the_claim() {
        // 16 MiB announced, 10 bytes delivered: truncated, and the reader never asked for
        // more than its initial window at once.
        let mut prefix = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
        prefix.extend_from_slice(&[0u8; 10]);
        let mut reader = HugeClaim {
            prefix,
            pos: 0,
            max_requested: 0,
        };
        let err = read_frame(&mut reader, MAX_FRAME_BYTES).await.unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { got: 10, .. }),
            "{err}"
        );
        assert!(reader.max_requested <= INITIAL_READ_CAPACITY);
    }

    #[test]
    fn writer_refuses_oversized_payloads() {
        let resp = InvokeResponse {
            data: vec![0; MAX_PAYLOAD_BYTES + 1],
        };
        let err = Frame::new(&resp).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");

        let env = Frame {
            version: PROTOCOL_VERSION,
            kind: kind::INVOKE_RESPONSE.into(),
            payload: vec![0; MAX_FRAME_BYTES + 1],
            trace_context: None,
        };
        assert!(matches!(
            encode_frame(&env),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn truncated_frames_are_reported() {
        let frame = encode_frame(&Frame::new(&sample_request()).unwrap()).unwrap();
        // Cut in the body.
        let cut = &frame[..frame.len() - 3];
        let err = read_frame(&mut &cut[..], MAX_FRAME_BYTES)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
        assert_eq!(err.code(), ErrorCode::BadRequest);
        // Cut in the length prefix.
        let err = read_frame(&mut &frame[..2], MAX_FRAME_BYTES)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Truncated {
                    expected: 4,
                    got: 2
                }
            ),
            "{err}"
        );
        // Nothing at all is a clean EOF, not an error.
        assert!(
            read_frame(&mut &[][..], MAX_FRAME_BYTES)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn garbage_is_malformed() {
        // An HTTP request line: the "length" is ~1.2 GB.
        let err = read_frame(&mut &b"GET / HTTP/1.1\r\n\r\n"[..], MAX_FRAME_BYTES)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");

        // A plausible length with bytes that are not a frame.
        let mut frame = 6u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0xc1, 0xff, 0x00, 0x13, 0x37, 0x42]);
        let err = read_frame(&mut &frame[..], MAX_FRAME_BYTES)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
        assert_eq!(err.to_wire_error().code, ErrorCode::BadRequest);

        // Valid msgpack, wrong shape.
        let body = rmp_serde::to_vec(&42u32).unwrap();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        let err = read_frame(&mut &frame[..], MAX_FRAME_BYTES)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");

        // A zero-length frame.
        let err = read_frame(&mut &[0u8, 0, 0, 0][..], MAX_FRAME_BYTES)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");

        // A good frame whose payload is garbage.
        let env = Frame {
            version: PROTOCOL_VERSION,
            kind: kind::INVOKE.into(),
            payload: vec![0xc1],
            trace_context: None,
        };
        assert!(matches!(
            env.decode::<InvokeRequest>(),
            Err(FrameError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn wrong_version_is_a_protocol_version_error() {
        for version in [0u16, 2, 999] {
            let env = Frame {
                version,
                kind: kind::INVOKE.into(),
                payload: Vec::new(),
                trace_context: None,
            };
            let frame = encode_frame(&env).unwrap();
            let err = read_frame(&mut &frame[..], MAX_FRAME_BYTES)
                .await
                .unwrap_err();
            assert!(
                matches!(err, FrameError::ProtocolVersion { got, supported: 1 } if got == version),
                "{err}"
            );
            assert_eq!(err.code(), ErrorCode::ProtocolVersion);
        }
    }

    /// No bytes make frame decoding fail other than with an error.
    mod any_input {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn any_frame_body(body in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Ok(frame) = decode_frame(&body) {
                    let _ = frame.payload_as::<InvokeRequest>(kind::INVOKE);
                    let _ = frame.decode::<WireError>();
                }
            }

            #[test]
            fn any_payload(payload in prop::collection::vec(any::<u8>(), 0..512)) {
                let frame = Frame {
                    version: PROTOCOL_VERSION,
                    kind: kind::INVOKE.into(),
                    payload,
                    trace_context: None,
                };
                let _ = frame.payload_as::<InvokeRequest>(kind::INVOKE);
                let _ = frame.decode::<WireError>();
            }

            #[test]
            fn any_stream(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let mut reader = bytes.as_slice();
                let _ = runtime.block_on(read_frame(&mut reader, 256));
            }
        }
    }
}
