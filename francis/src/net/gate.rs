//! The connection gate: what a server admits before a connection has proved anything. Each
//! connection attempt costs a TLS handshake and QUIC buffers, so the two servers count the
//! handshakes in progress (in all and per source IP) and the connections open per source IP,
//! make new clients prove their address with a QUIC retry when many handshakes are pending, and
//! refuse attempts above the caps. The QUIC windows and stream counts every endpoint uses live
//! here too, so no connection can make a server buffer more than they allow.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wtransport::config::QuicTransportConfig;
use wtransport::quinn::VarInt;

/// Bytes one stream may have received and not yet read (QUIC stream flow control).
pub const STREAM_RECEIVE_WINDOW: u32 = 1024 * 1024;
/// Bytes one connection may have received and not yet read, over all its streams.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 4 * 1024 * 1024;
/// Unidirectional streams a peer may open: what HTTP/3 needs (its control stream and the two
/// QPACK streams). Francis itself uses bidirectional streams only.
pub const MAX_UNI_STREAMS: u32 = 3;
/// Bytes of unread QUIC datagrams kept per connection (Francis sends none).
const DATAGRAM_RECEIVE_BUFFER: usize = 64 * 1024;

/// Connection attempts an endpoint queues before its accept loop sees them, and what it buffers
/// for them (QUIC's defaults are 65,536 attempts and 100 MiB).
pub(crate) const MAX_QUEUED_ATTEMPTS: usize = 256;
/// Bytes buffered for one queued attempt.
pub(crate) const QUEUED_ATTEMPT_BYTES: u64 = 64 * 1024;

/// A QUIC transport configuration with Francis's explicit windows and stream counts:
/// `max_bidi_streams` concurrent requests, the idle timeout, and an optional keep-alive.
pub(crate) fn transport(
    max_bidi_streams: u32,
    idle: Duration,
    keep_alive: Option<Duration>,
) -> Result<QuicTransportConfig, &'static str> {
    let mut transport = QuicTransportConfig::default();
    transport.max_concurrent_bidi_streams(VarInt::from_u32(max_bidi_streams));
    transport.max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS));
    transport.stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW));
    transport.receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW));
    transport.datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER));
    let idle = wtransport::quinn::IdleTimeout::try_from(idle)
        .map_err(|_| "the idle timeout is too large")?;
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(keep_alive);
    Ok(transport)
}

/// Caps on connections a server accepts before they have proved anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Handshakes in progress at once (QUIC and TLS, the WebTransport request and, on the
    /// runtime, registration); a further attempt is refused. Default 256.
    pub max_pending: usize,
    /// Handshakes in progress above which a new client must first prove it can receive at its
    /// address (a QUIC retry), which a spoofed source cannot. Default 64.
    pub validate_above: usize,
    /// Handshakes in progress from one IP address. Default 32.
    pub max_pending_per_ip: usize,
    /// Connections open at once from one IP address, in handshake or established. Default 512
    /// (hosts on one machine share an address).
    pub max_per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_pending: 256,
            validate_above: 64,
            max_pending_per_ip: 32,
            max_per_ip: 512,
        }
    }
}

impl ConnectionLimits {
    /// Check the limits make sense.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.max_pending == 0 || self.max_pending_per_ip == 0 || self.max_per_ip == 0 {
            return Err("connection limits must be at least 1");
        }
        if self.max_pending_per_ip > self.max_per_ip {
            return Err("max_pending_per_ip must not exceed max_per_ip");
        }
        Ok(())
    }
}

/// What the gate decided about a connection attempt.
pub(crate) enum Decision {
    /// Go ahead; hold the ticket for the connection's life.
    Admit(Ticket),
    /// Ask the client to prove its address first (a QUIC retry).
    Retry,
    /// Refuse, for this reason (logged).
    Refuse(&'static str),
}

/// Counts of what the gate did, for logs and tests.
#[derive(Debug, Default)]
pub(crate) struct GateStats {
    /// Attempts answered with a retry.
    pub retried: AtomicU64,
    /// Attempts refused.
    pub refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Counts {
    pending: usize,
    /// Per source IP: (handshakes pending, connections open).
    per_ip: HashMap<IpAddr, (usize, usize)>,
}

/// The gate one server's accept loop asks about each attempt.
#[derive(Debug)]
pub(crate) struct Gate {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
    /// What the gate did.
    pub stats: GateStats,
}

impl Gate {
    /// A gate with these limits.
    pub(crate) fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Gate {
            limits,
            counts: Mutex::default(),
            stats: GateStats::default(),
        })
    }

    /// Decide about an attempt from `ip`; `validated` says whether QUIC already proved the
    /// client's address.
    pub(crate) fn decide(self: &Arc<Self>, ip: IpAddr, validated: bool) -> Decision {
        let ip = ip.to_canonical();
        let Ok(mut counts) = self.counts.lock() else {
            return Decision::Refuse("the server is failing");
        };
        let (pending_here, open_here) = counts.per_ip.get(&ip).copied().unwrap_or((0, 0));
        let refuse = if counts.pending >= self.limits.max_pending {
            Some("too many handshakes in progress")
        } else if pending_here >= self.limits.max_pending_per_ip {
            Some("too many handshakes in progress from this address")
        } else if open_here >= self.limits.max_per_ip {
            Some("too many connections from this address")
        } else {
            None
        };
        if let Some(reason) = refuse {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Decision::Refuse(reason);
        }
        if !validated && counts.pending >= self.limits.validate_above {
            self.stats.retried.fetch_add(1, Ordering::Relaxed);
            return Decision::Retry;
        }
        counts.pending += 1;
        let entry = counts.per_ip.entry(ip).or_default();
        entry.0 += 1;
        entry.1 += 1;
        Decision::Admit(Ticket {
            gate: self.clone(),
            ip,
            pending: true,
        })
    }

    /// Handshakes in progress now.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.counts.lock().map(|c| c.pending).unwrap_or(0)
    }

    fn release(&self, ip: IpAddr, pending: bool, open: bool) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        if pending {
            counts.pending = counts.pending.saturating_sub(1);
        }
        if let Some(entry) = counts.per_ip.get_mut(&ip) {
            if pending {
                entry.0 = entry.0.saturating_sub(1);
            }
            if open {
                entry.1 = entry.1.saturating_sub(1);
            }
            if *entry == (0, 0) {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

/// An admitted connection's place at the gate: pending until [`established`](Self::established),
/// open until dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    ip: IpAddr,
    pending: bool,
}

impl Ticket {
    /// The connection finished its handshake (on the runtime: registered); it stops counting
    /// as pending.
    pub(crate) fn established(&mut self) {
        if self.pending {
            self.pending = false;
            self.gate.release(self.ip, true, false);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.release(self.ip, self.pending, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_pending: 4,
            validate_above: 2,
            max_pending_per_ip: 3,
            max_per_ip: 5,
        }
    }

    fn admit(gate: &Arc<Gate>, ip: [u8; 4], validated: bool) -> Option<Ticket> {
        match gate.decide(IpAddr::from(ip), validated) {
            Decision::Admit(ticket) => Some(ticket),
            _ => None,
        }
    }

    #[test]
    fn one_address_cannot_hold_every_pending_handshake() {
        let gate = Gate::new(limits());
        let held: Vec<_> = (0..3)
            .map(|_| admit(&gate, [10, 0, 0, 1], true).expect("under the per-IP cap"))
            .collect();
        assert!(matches!(
            gate.decide(IpAddr::from([10, 0, 0, 1]), true),
            Decision::Refuse(_)
        ));
        // Another address still gets in.
        assert!(admit(&gate, [10, 0, 0, 2], true).is_some());
        drop(held);
        assert_eq!(gate.pending(), 0);
        assert!(admit(&gate, [10, 0, 0, 1], true).is_some());
    }

    #[test]
    fn unvalidated_clients_must_retry_under_load_and_everyone_is_refused_above_the_cap() {
        let gate = Gate::new(limits());
        let a = admit(&gate, [10, 0, 0, 1], false).expect("light load");
        let b = admit(&gate, [10, 0, 0, 2], false).expect("light load");
        assert!(matches!(
            gate.decide(IpAddr::from([10, 0, 0, 3]), false),
            Decision::Retry
        ));
        let c = admit(&gate, [10, 0, 0, 3], true).expect("a validated address");
        let d = admit(&gate, [10, 0, 0, 4], true).expect("a validated address");
        assert!(matches!(
            gate.decide(IpAddr::from([10, 0, 0, 5]), true),
            Decision::Refuse(_)
        ));
        assert_eq!(gate.stats.retried.load(Ordering::Relaxed), 1);
        assert_eq!(gate.stats.refused.load(Ordering::Relaxed), 1);
        drop((a, b, c, d));
        assert!(admit(&gate, [10, 0, 0, 5], false).is_some());
    }

    #[test]
    fn established_connections_count_per_address_but_not_as_pending() {
        let gate = Gate::new(limits());
        let mut open = Vec::new();
        for _ in 0..5 {
            let mut ticket = admit(&gate, [10, 0, 0, 1], true).expect("under the caps");
            ticket.established();
            open.push(ticket);
        }
        assert_eq!(gate.pending(), 0);
        assert!(matches!(
            gate.decide(IpAddr::from([10, 0, 0, 1]), true),
            Decision::Refuse("too many connections from this address")
        ));
        open.pop();
        assert!(admit(&gate, [10, 0, 0, 1], true).is_some());
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let gate = Gate::new(limits());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("an address");
        let _held: Vec<_> = (0..3)
            .map(|_| match gate.decide(mapped, true) {
                Decision::Admit(t) => t,
                _ => panic!("under the cap"),
            })
            .collect();
        assert!(matches!(
            gate.decide(IpAddr::from([10, 0, 0, 1]), true),
            Decision::Refuse(_)
        ));
    }
}
