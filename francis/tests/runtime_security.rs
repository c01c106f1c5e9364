//! The runtime's front door under hostile or broken clients, over real QUIC on 127.0.0.1:
//! connections that never register are closed in time, malformed and oversized frames and
//! protocol violations get error replies that say what is wrong, a client certificate from
//! another cluster is refused in the handshake, a bootstrap credential does not buy a live
//! host's identity, and the runtime keeps serving throughout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use francis::internals::bootstrap;
use francis::internals::messages::{
    self as rpc, AuthProof, PreviousIdentityProof, RUNTIME_PATH, RegisterRequest, StoreRequest,
    method,
};
use francis::internals::wire::{self, ErrorCode, Frame, WireError};
use francis::net::pki::{ClusterCa, Identity, RUNTIME_PREFIX};
use francis::net::tls::{self, CertSlot, Trust, Unverified};
use francis::runtime::Runtime;
use tokio::io::AsyncWriteExt;
use wtransport::endpoint::endpoint_side::Client;
use wtransport::{ClientConfig, Connection, Endpoint};

mod support;

const RUNTIME_PSK: &str = "security-test-runtime-psk-0123456789abcdef";
const HOST_PSK: &str = "security-test-host-psk";
const STEP: Duration = Duration::from_secs(10);

struct Running {
    addr: SocketAddr,
    ca: ClusterCa,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn runtime() -> Running {
    runtime_with(|b| b.host_psk(HOST_PSK)).await
}

/// A runtime on a memory store, bootstrapping hosts as `bootstrap` configures it.
async fn runtime_with(
    bootstrap: impl FnOnce(francis::runtime::RuntimeBuilder) -> francis::runtime::RuntimeBuilder,
) -> Running {
    let builder = Runtime::builder()
        .bind("127.0.0.1:0".parse().unwrap())
        .runtime_psk(RUNTIME_PSK)
        .memory_store()
        .registration_timeout(Duration::from_secs(1))
        .shutdown_grace_period(Duration::from_secs(1));
    let runtime = bootstrap(builder).build().await.unwrap();
    let addr = runtime.local_addr();
    let ca = runtime.cluster_ca().clone();
    let (stop, task) = support::run_runtime(runtime);
    Running {
        addr,
        ca,
        stop,
        task,
    }
}

/// A raw client of the runtime endpoint, presenting `cert` (or nothing).
async fn connect(
    addr: SocketAddr,
    trust: &Trust,
    cert: std::sync::Arc<CertSlot>,
) -> Result<(Endpoint<Client>, Connection), String> {
    let tls = tls::client_config(trust, cert, RUNTIME_PREFIX, Unverified::Refuse).unwrap();
    let config = ClientConfig::builder()
        .with_bind_address(SocketAddr::from(([127, 0, 0, 1], 0)))
        .with_custom_tls(tls)
        .build();
    let endpoint = Endpoint::client(config).unwrap();
    let conn = tokio::time::timeout(
        STEP,
        endpoint.connect(format!("https://{addr}{RUNTIME_PATH}")),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    Ok((endpoint, conn))
}

/// Send raw bytes on a fresh stream (then FIN) and read the reply frame.
async fn exchange(conn: &Connection, bytes: &[u8]) -> Option<Frame> {
    let (mut send, mut recv) = conn.open_bi().await.ok()?.await.ok()?;
    send.write_all(bytes).await.ok()?;
    let _ = send.shutdown().await;
    tokio::time::timeout(STEP, wire::read_frame(&mut recv, wire::MAX_FRAME_BYTES))
        .await
        .ok()?
        .ok()?
}

/// A heartbeat request (no arguments).
fn heartbeat() -> StoreRequest {
    StoreRequest {
        op: "heartbeat".into(),
        args: rmp_serde::to_vec(&()).unwrap(),
    }
}

fn error_of(frame: Option<Frame>) -> WireError {
    let frame = frame.expect("an error reply");
    assert!(
        frame.is_error(),
        "expected an error reply, got {}",
        frame.kind
    );
    frame.decode::<WireError>().unwrap()
}

async fn closed_within(conn: &Connection, limit: Duration) -> bool {
    tokio::time::timeout(limit, conn.closed()).await.is_ok()
}

/// A correct PSK registration still works (the runtime kept serving).
async fn assert_still_serving(run: &Running) {
    let address = francis::testing::free_local_address();
    let (response, _) = bootstrap_host(run, Credential::Psk, &address, Previous::None)
        .await
        .expect("registered");
    assert!(!response.host_id.is_empty());
}

/// How a raw client bootstraps.
#[derive(Clone, Copy)]
enum Credential {
    /// The channel-bound challenge-response with [`HOST_PSK`].
    Psk,
    /// This bearer token.
    Token(&'static str),
}

/// The previous identity a bootstrapping raw client asks for.
enum Previous<'a> {
    None,
    /// Ask for this ID with no proof at all.
    Bare(&'a str),
    /// Ask for `id`, presenting `cert`'s certificate and signing with `signer`'s key over this
    /// session's transcript.
    Signed {
        id: &'a str,
        cert: &'a Identity,
        signer: &'a Identity,
    },
    /// Ask for `id` with a proof made for another session.
    Replayed {
        id: &'a str,
        proof: PreviousIdentityProof,
    },
}

fn sign(identity: &Identity, message: &[u8]) -> Vec<u8> {
    let key = rcgen::KeyPair::try_from(identity.private_key_der()).unwrap();
    rcgen::SigningKey::sign(&key, message).unwrap()
}

/// This session's proof that `signer` holds `id`'s key.
fn proof_on(
    conn: &Connection,
    id: &str,
    cert: &Identity,
    signer: &Identity,
) -> PreviousIdentityProof {
    let mut binding = [0u8; 32];
    conn.export_keying_material(&mut binding, bootstrap::REATTACH_BINDING_LABEL, &[])
        .unwrap();
    PreviousIdentityProof {
        cert: cert.leaf_der().to_vec(),
        sig: sign(signer, &bootstrap::reattach_transcript(&binding, id)),
    }
}

/// Bootstrap a host at `address` over a fresh connection with no client certificate; its
/// registration response and the identity the runtime certified, or the runtime's refusal.
async fn bootstrap_host(
    run: &Running,
    credential: Credential,
    address: &str,
    previous: Previous<'_>,
) -> Result<(rpc::RegisterResponse, Identity), WireError> {
    let trust = run.ca.trust();
    let (_endpoint, conn) = connect(run.addr, &trust, CertSlot::empty()).await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap().await.unwrap();
    let key = francis::net::pki::WorkloadKey::generate().unwrap();
    let mut request = RegisterRequest {
        address: address.to_owned(),
        wlpub: key.public_key_raw(),
        ..RegisterRequest::default()
    };
    match previous {
        Previous::None => {}
        Previous::Bare(id) => request.prev_host_id = Some(id.to_owned()),
        Previous::Signed { id, cert, signer } => {
            request.prev_host_id = Some(id.to_owned());
            request.prev_proof = Some(proof_on(&conn, id, cert, signer));
        }
        Previous::Replayed { id, proof } => {
            request.prev_host_id = Some(id.to_owned());
            request.prev_proof = Some(proof);
        }
    }
    request.auth = Some(match credential {
        Credential::Token(token) => AuthProof {
            method: method::JWT.into(),
            proof: Vec::new(),
            token: token.to_owned(),
        },
        Credential::Psk => {
            let cnonce = bootstrap::nonce();
            let auth = rpc::RegisterAuth {
                method: method::PSK.into(),
                cnonce: cnonce.clone(),
            };
            wire::write_frame(&mut send, &Frame::new(&auth).unwrap())
                .await
                .unwrap();
            let challenge: rpc::RegisterChallenge = wire::read_frame(&mut recv, 65536)
                .await
                .unwrap()
                .unwrap()
                .decode()
                .unwrap();
            let mut binding = vec![0u8; 32];
            conn.export_keying_material(&mut binding, bootstrap::CHANNEL_BINDING_LABEL, &[])
                .unwrap();
            AuthProof {
                method: method::PSK.into(),
                proof: bootstrap::psk_proof(
                    HOST_PSK.as_bytes(),
                    bootstrap::ProofSide::Client,
                    &cnonce,
                    &challenge.snonce,
                    &binding,
                ),
                token: String::new(),
            }
        }
    });
    wire::write_frame(&mut send, &Frame::new(&request).unwrap())
        .await
        .unwrap();
    let reply = wire::read_frame(&mut recv, 1 << 20).await.unwrap().unwrap();
    if reply.is_error() {
        return Err(reply.decode::<WireError>().unwrap());
    }
    let response: rpc::RegisterResponse = reply.decode().unwrap();
    let ca = rustls::pki_types::CertificateDer::from(response.cabundle[0].to_vec());
    let identity = key
        .into_identity(
            rustls::pki_types::CertificateDer::from(response.wlcert.clone()),
            &[ca],
        )
        .unwrap();
    Ok((response, identity))
}

/// Accepts one fixed token.
struct OneToken;

#[async_trait::async_trait]
impl francis::runtime::TokenValidator for OneToken {
    async fn validate(&self, token: &str) -> Result<String, String> {
        if token == "the-one-token" {
            Ok("worker".into())
        } else {
            Err("not the token".into())
        }
    }
}

/// An impersonation attempt was either refused (the victim's address is in use) or got a new ID.
fn not_taken(
    attempt: Result<(rpc::RegisterResponse, Identity), WireError>,
    victim_id: &str,
    what: &str,
) {
    match attempt {
        Ok((response, _)) => {
            assert_ne!(response.host_id, victim_id, "{what} took over the victim");
            assert!(!response.reattached, "{what} reattached");
        }
        Err(error) => assert_eq!(error.code, ErrorCode::AddressInUse, "{what}: {error}"),
    }
}

/// Whoever holds a bootstrap credential (the host PSK, or one valid token) must not get a
/// live host's identity by asking for its ID with its address: without proof of the victim's
/// key every attempt gets a new ID, while the victim itself, proving its key, keeps its ID.
async fn impersonation_is_refused(credential: Credential, run: &Running) {
    let victim_address = francis::testing::free_local_address();
    let (victim, victim_identity) =
        bootstrap_host(run, credential, &victim_address, Previous::None)
            .await
            .unwrap();
    let victim_id = victim.host_id.as_str();

    // Asking for the ID outright, from elsewhere...
    let attacker_address = francis::testing::free_local_address();
    let (taken, attacker_identity) = bootstrap_host(
        run,
        credential,
        &attacker_address,
        Previous::Bare(victim_id),
    )
    .await
    .unwrap();
    assert_ne!(
        taken.host_id, victim_id,
        "a bare claim took over the victim"
    );
    assert!(!taken.reattached);
    // ...and with the victim's address.
    let attempt = bootstrap_host(run, credential, &victim_address, Previous::Bare(victim_id)).await;
    not_taken(attempt, victim_id, "a bare claim with the victim's address");

    // A certificate for the victim's ID from another cluster, correctly signed.
    let stranger = ClusterCa::from_psks(&["a stranger cluster's runtime psk, 32+ bytes"]).unwrap();
    let forged = stranger
        .issue_host_identity(victim_id, Duration::from_secs(3600))
        .unwrap();
    let forgeries = [
        // The victim's certificate (public: it is shown in every handshake) signed with
        // another key.
        (&victim_identity, &attacker_identity, "a forged signature"),
        // The attacker's own valid certificate, for another ID.
        (
            &attacker_identity,
            &attacker_identity,
            "another host's certificate",
        ),
        (&forged, &forged, "a foreign certificate"),
    ];
    for (cert, signer, what) in forgeries {
        let previous = Previous::Signed {
            id: victim_id,
            cert,
            signer,
        };
        let attempt = bootstrap_host(run, credential, &victim_address, previous).await;
        not_taken(attempt, victim_id, what);
    }

    // A genuine proof captured from another session does not carry over.
    let trust = run.ca.trust();
    let (_endpoint, other) = connect(run.addr, &trust, CertSlot::empty()).await.unwrap();
    let captured = proof_on(&other, victim_id, &victim_identity, &victim_identity);
    let attempt = bootstrap_host(
        run,
        credential,
        &victim_address,
        Previous::Replayed {
            id: victim_id,
            proof: captured,
        },
    )
    .await;
    not_taken(attempt, victim_id, "a replayed proof");

    // The victim, proving its key, keeps its ID and its registration.
    let (kept, _) = bootstrap_host(
        run,
        credential,
        &victim_address,
        Previous::Signed {
            id: victim_id,
            cert: &victim_identity,
            signer: &victim_identity,
        },
    )
    .await
    .unwrap();
    assert_eq!(kept.host_id, victim_id);
    assert!(kept.reattached, "the victim's registration was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_psk_holder_cannot_take_over_a_live_hosts_identity() {
    let run = runtime().await;
    impersonation_is_refused(Credential::Psk, &run).await;
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_token_holder_cannot_take_over_a_live_hosts_identity() {
    let run = runtime_with(|b| b.token_validator(std::sync::Arc::new(OneToken))).await;
    impersonation_is_refused(Credential::Token("the-one-token"), &run).await;
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_register_are_closed_in_time() {
    let run = runtime().await;
    let trust = run.ca.trust();
    // No stream at all.
    let (_e1, silent) = connect(run.addr, &trust, CertSlot::empty()).await.unwrap();
    // A stream that never carries a frame.
    let (_e2, mute) = connect(run.addr, &trust, CertSlot::empty()).await.unwrap();
    let (mut send, _recv) = mute.open_bi().await.unwrap().await.unwrap();
    send.write_all(&[0, 0]).await.unwrap();
    let start = Instant::now();
    assert!(
        closed_within(&silent, STEP).await,
        "a silent connection is closed"
    );
    assert!(
        closed_within(&mute, STEP).await,
        "a mute stream's connection is closed"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "closed after the 1 s registration timeout, not held: {:?}",
        start.elapsed()
    );
    assert_still_serving(&run).await;
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_out_of_order_registrations_get_clear_errors() {
    let run = runtime().await;
    let trust = run.ca.trust();

    // Garbage bytes: a length prefix followed by something that is not a frame.
    let (_e, conn) = connect(run.addr, &trust, CertSlot::empty()).await.unwrap();
    let error = error_of(exchange(&conn, &[0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]).await);
    assert_eq!(error.code, ErrorCode::BadRequest, "{error}");

    // A length prefix over the 64 KiB registration limit, refused before anything is read.
    let (_e, conn) = connect(run.addr, &trust, CertSlot::empty()).await.unwrap();
    let error = error_of(exchange(&conn, &(16u32 << 20).to_be_bytes()).await);
    assert_eq!(error.code, ErrorCode::TooLarge, "{error}");

    // A store call before registering.
    let (_e, conn) = connect(run.addr, &trust, CertSlot::empty()).await.unwrap();
    let frame = wire::encode_frame(&Frame::new(&heartbeat()).unwrap()).unwrap();
    let error = error_of(exchange(&conn, &frame).await);
    assert_eq!(error.code, ErrorCode::BadRequest, "{error}");
    assert!(error.message.contains("registration"), "{error}");

    // A PSK proof sent without the challenge.
    let (_e, conn) = connect(run.addr, &trust, CertSlot::empty()).await.unwrap();
    let request = RegisterRequest {
        address: "127.0.0.1:9".into(),
        auth: Some(AuthProof {
            method: method::PSK.into(),
            proof: vec![0; 32],
            token: String::new(),
        }),
        wlpub: vec![0; 32],
        ..RegisterRequest::default()
    };
    let frame = wire::encode_frame(&Frame::new(&request).unwrap()).unwrap();
    let error = error_of(exchange(&conn, &frame).await);
    assert_eq!(error.code, ErrorCode::Unauthorized, "{error}");

    // No credential and no client certificate.
    let (_e, conn) = connect(run.addr, &trust, CertSlot::empty()).await.unwrap();
    let request = RegisterRequest {
        address: "127.0.0.1:9".into(),
        wlpub: vec![0; 32],
        ..RegisterRequest::default()
    };
    let frame = wire::encode_frame(&Frame::new(&request).unwrap()).unwrap();
    let error = error_of(exchange(&conn, &frame).await);
    assert_eq!(error.code, ErrorCode::Unauthorized, "{error}");
    assert!(error.message.contains("workload certificate"), "{error}");

    assert_still_serving(&run).await;
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_from_another_cluster_or_for_another_host_are_refused() {
    let run = runtime().await;
    let trust = run.ca.trust();

    // A certificate of another cluster fails the handshake.
    let stranger = ClusterCa::from_psks(&["a stranger cluster's runtime psk, 32+ bytes"]).unwrap();
    let identity = stranger
        .issue_host_identity("intruder", Duration::from_secs(3600))
        .unwrap();
    let refused = match connect(run.addr, &trust, CertSlot::new(&identity).unwrap()).await {
        Err(e) => e,
        // The handshake may complete on the client side before the server's alert arrives.
        Ok((_e, conn)) => {
            let frame = wire::encode_frame(&Frame::new(&heartbeat()).unwrap()).unwrap();
            match exchange(&conn, &frame).await {
                None => "refused".to_string(),
                Some(frame) => panic!("a foreign certificate got a reply: {}", frame.kind),
            }
        }
    };
    assert!(!refused.is_empty());

    // A valid certificate of this cluster cannot register as another host.
    let identity = run
        .ca
        .issue_host_identity("host-one", Duration::from_secs(3600))
        .unwrap();
    let (_e, conn) = connect(run.addr, &trust, CertSlot::new(&identity).unwrap())
        .await
        .unwrap();
    let request = RegisterRequest {
        prev_host_id: Some("host-two".into()),
        address: "127.0.0.1:9".into(),
        wlpub: vec![0; 32],
        ..RegisterRequest::default()
    };
    let frame = wire::encode_frame(&Frame::new(&request).unwrap()).unwrap();
    let error = error_of(exchange(&conn, &frame).await);
    assert_eq!(error.code, ErrorCode::Unauthorized, "{error}");
    assert!(error.message.contains("host-one"), "{error}");

    assert_still_serving(&run).await;
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

/// A registered session over mTLS, as host `host_id` (a certificate straight from the CA).
async fn registered_session(run: &Running, host_id: &str) -> (Endpoint<Client>, Connection) {
    registered_session_with(run, host_id, Vec::new()).await
}

/// [`registered_session`] for a host that runs `actor_types`.
async fn registered_session_with(
    run: &Running,
    host_id: &str,
    actor_types: Vec<francis::model::ActorTypeRegistration>,
) -> (Endpoint<Client>, Connection) {
    let identity = run
        .ca
        .issue_host_identity(host_id, Duration::from_secs(3600))
        .unwrap();
    let (endpoint, conn) = connect(run.addr, &run.ca.trust(), CertSlot::new(&identity).unwrap())
        .await
        .unwrap();
    let key = francis::net::pki::WorkloadKey::generate().unwrap();
    let request = RegisterRequest {
        address: francis::testing::free_local_address(),
        wlpub: key.public_key_raw(),
        actor_types,
        ..RegisterRequest::default()
    };
    let frame = wire::encode_frame(&Frame::new(&request).unwrap()).unwrap();
    let reply = exchange(&conn, &frame).await.expect("a registration reply");
    let response: rpc::RegisterResponse = reply.decode().expect("registered");
    assert_eq!(response.host_id, host_id);
    (endpoint, conn)
}

/// A heartbeat on this registered session succeeds.
async fn assert_heartbeat_works(conn: &Connection) {
    let args = rmp_serde::to_vec(&(rpc::SessionHost::default(),)).unwrap();
    let reply = exchange(conn, &store_request("heartbeat", args))
        .await
        .expect("a reply");
    assert!(!reply.is_error(), "{:?}", reply.decode::<WireError>());
}

fn store_request(op: &str, args: Vec<u8>) -> Vec<u8> {
    let request = StoreRequest {
        op: op.into(),
        args,
    };
    wire::encode_frame(&Frame::new(&request).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_deeply_nested_store_arguments_are_refused_before_decoding() {
    let run = runtime().await;
    let (_endpoint, conn) = registered_session(&run, "hostile").await;

    // Megabytes of arguments for an operation that takes a key and a name.
    let huge_name = "n".repeat(1 << 20);
    let args = rmp_serde::to_vec(&(("counter", "1"), huge_name)).unwrap();
    let error = error_of(exchange(&conn, &store_request("get_alarm", args)).await);
    assert_eq!(error.code, ErrorCode::BadRequest, "{error}");
    assert!(error.message.contains("at most 65536"), "{error}");

    // Arguments nested 200 deep, in a field the decoder skips (each level one byte: a
    // one-element array): `("counter", {"zzz": [[[[…]]]]})`.
    let deep = |prefix: &[u8]| {
        let mut bytes = prefix.to_vec();
        bytes.extend(std::iter::repeat_n(0x91u8, 200));
        bytes.push(0xc0);
        bytes
    };
    let args = deep(b"\x92\xa7counter\x81\xa3zzz");
    let error = error_of(exchange(&conn, &store_request("list_states", args)).await);
    assert_eq!(error.code, ErrorCode::BadRequest, "{error}");
    assert!(error.message.contains("depth"), "{error}");

    // A frame nested 200 deep is refused the same way: `{"zzz": [[[[…]]]]}`.
    let body = deep(b"\x81\xa3zzz");
    let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let error = error_of(exchange(&conn, &frame).await);
    assert_eq!(error.code, ErrorCode::BadRequest, "{error}");
    assert!(error.message.contains("depth"), "{error}");

    // The session still works.
    assert_heartbeat_works(&conn).await;
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cannot_make_the_runtime_hold_more_than_its_session_budget() {
    let run = runtime().await;
    let (_endpoint, conn) = registered_session(&run, "greedy").await;
    // Four requests announce 16 MiB bodies each (the whole 64 MiB budget) and send nothing more.
    let mut held = Vec::new();
    for _ in 0..4 {
        let (mut send, recv) = conn.open_bi().await.unwrap().await.unwrap();
        send.write_all(&(16u32 * 1024 * 1024 - 1).to_be_bytes())
            .await
            .unwrap();
        held.push((send, recv));
    }
    // A small request of the same session now waits for budget instead of being read...
    let (mut send, mut recv) = conn.open_bi().await.unwrap().await.unwrap();
    send.write_all(&store_request(
        "heartbeat",
        rmp_serde::to_vec(&(rpc::SessionHost::default(),)).unwrap(),
    ))
    .await
    .unwrap();
    let _ = send.shutdown().await;
    let early =
        tokio::time::timeout(Duration::from_secs(1), wire::read_frame(&mut recv, 1 << 20)).await;
    assert!(
        early.is_err(),
        "a request was read beyond the session's budget"
    );
    // ...and is served once a held request gives its budget back.
    let (mut stalled, _) = held.remove(0);
    stalled.reset(wtransport::VarInt::from_u32(0)).unwrap();
    let reply = tokio::time::timeout(STEP, wire::read_frame(&mut recv, 1 << 20))
        .await
        .expect("served once budget was released")
        .unwrap()
        .unwrap();
    assert!(!reply.is_error(), "{:?}", reply.decode::<WireError>());

    // Another host's session has its own budget.
    let (_other_endpoint, other) = registered_session(&run, "neighbour").await;
    assert_heartbeat_works(&other).await;
    drop(held);
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_a_runtime_returns_its_cluster_ca() {
    let run = runtime().await;
    let ca = francis::runtime::probe_ca(&run.addr.to_string(), STEP)
        .await
        .unwrap();
    assert_eq!(ca.as_ref(), run.ca.ca_der().as_ref());
    // Nothing listens there: a clear error, in bounded time.
    let nobody = francis::testing::free_local_address();
    let err = francis::runtime::probe_ca(&nobody, Duration::from_secs(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&nobody), "{err}");
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

/// Write `chunk` on `send` until the runtime stops granting flow-control credit (no write
/// completes for half a second); the bytes it accepted.
async fn write_until_blocked(mut send: wtransport::SendStream) -> usize {
    let chunk = vec![0u8; 16 * 1024];
    let mut written = 0;
    // At most 64 MiB: far beyond any window, so the loop ends by itself either way.
    while written < 64 * 1024 * 1024 {
        match tokio::time::timeout(Duration::from_millis(500), send.write(&chunk)).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(_)) | Err(_) => break,
        }
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_connection_cannot_make_the_runtime_buffer_more_than_its_windows() {
    use francis::internals::gate::{
        CONNECTION_RECEIVE_WINDOW, MAX_UNI_STREAMS, STREAM_RECEIVE_WINDOW,
    };
    let run = runtime_with(|b| {
        b.host_psk(HOST_PSK)
            .registration_timeout(Duration::from_secs(30))
    })
    .await;
    let (_endpoint, conn) = connect(run.addr, &run.ca.trust(), CertSlot::empty())
        .await
        .unwrap();
    // The registration stream, left silent, then streams the runtime does not read before the
    // connection registers: what they push stays in the runtime's buffers.
    let (_register, _) = conn.open_bi().await.unwrap().await.unwrap();
    let one = write_until_blocked(conn.open_bi().await.unwrap().await.unwrap().0).await;
    assert!(
        one <= STREAM_RECEIVE_WINDOW as usize,
        "one stream pushed {one} bytes, more than the stream window"
    );
    let mut writers = Vec::new();
    for _ in 0..8 {
        // A runtime may also close a connection that holds its credit this long without
        // registering: then it buffers nothing more, which is the point.
        let opened = tokio::time::timeout(STEP, async {
            match conn.open_bi().await {
                Ok(opening) => opening.await.ok(),
                Err(_) => None,
            }
        })
        .await;
        let Ok(Some((send, _))) = opened else {
            break;
        };
        writers.push(tokio::spawn(write_until_blocked(send)));
    }
    let mut total = one;
    for writer in writers {
        total += writer.await.unwrap();
    }
    assert!(
        total <= CONNECTION_RECEIVE_WINDOW as usize,
        "nine streams pushed {total} bytes, more than the connection window"
    );
    // Unidirectional streams: what HTTP/3 needs and no more (counting the client's own).
    let mut opened = 0;
    while opened < 10 {
        let open = async { conn.open_uni().await.ok()?.await.ok() };
        match tokio::time::timeout(Duration::from_millis(500), open).await {
            Ok(Some(_stream)) => opened += 1,
            _ => break,
        }
    }
    assert!(
        opened <= MAX_UNI_STREAMS as usize,
        "{opened} more unidirectional streams were granted"
    );
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

/// A renewal request on a registered session, for a fresh key.
fn renew_request() -> Vec<u8> {
    let key = francis::net::pki::WorkloadKey::generate().unwrap();
    let request = rpc::RenewRequest {
        wlpub: key.public_key_raw(),
    };
    wire::encode_frame(&Frame::new(&request).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_was_unregistered_cannot_renew_its_certificate() {
    let run = runtime().await;
    let (_endpoint, conn) = registered_session(&run, "leaving").await;
    // Registered: the renewal is granted.
    let reply = exchange(&conn, &renew_request()).await.expect("a reply");
    assert!(!reply.is_error(), "{:?}", reply.decode::<WireError>());
    let _: rpc::RenewResponse = reply.decode().unwrap();

    // The host unregisters but keeps its session open: no more certificates on it.
    let args = rmp_serde::to_vec(&(rpc::SessionHost::default(),)).unwrap();
    let reply = exchange(&conn, &store_request("unregister_host", args))
        .await
        .expect("a reply");
    assert!(!reply.is_error(), "{:?}", reply.decode::<WireError>());
    let error = error_of(exchange(&conn, &renew_request()).await);
    assert_eq!(error.code, ErrorCode::HostUnregistered, "{error}");
    assert!(
        error.message.contains("leaving") && error.message.contains("register again"),
        "{error}"
    );
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

/// A connection the runtime lets in within five seconds, trying every 100 ms.
async fn admitted_soon(run: &Running) -> Option<(Endpoint<Client>, Connection)> {
    for _ in 0..50 {
        if let Ok(conn) = connect(run.addr, &run.ca.trust(), CertSlot::empty()).await {
            return Some(conn);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_unregistered_connections_than_its_share() {
    use francis::internals::peer::ConnectionLimits;
    let run = runtime_with(|b| {
        b.host_psk(HOST_PSK)
            .registration_timeout(Duration::from_secs(30))
    })
    .await;
    let trust = run.ca.trust();
    let cap = ConnectionLimits::default().max_pending_per_ip;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(connect(run.addr, &trust, CertSlot::empty()).await.unwrap());
    }
    let refused = connect(run.addr, &trust, CertSlot::empty()).await;
    assert!(
        refused.is_err(),
        "connection {} from one address was let in while {cap} wait to register",
        cap + 1
    );
    // One leaves: room for one more (the runtime notices the close shortly).
    held.pop();
    let admitted = admitted_soon(&run).await;
    assert!(admitted.is_some(), "a connection is let in once one leaves");
    // All leave: the runtime registers hosts again once it has noticed.
    drop((held, admitted));
    assert!(admitted_soon(&run).await.is_some());
    assert_still_serving(&run).await;
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

/// A store operation's successful reply, decoded.
async fn store_call<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    op: &str,
    args: Vec<u8>,
) -> T {
    let reply = exchange(conn, &store_request(op, args))
        .await
        .expect("a reply");
    assert!(!reply.is_error(), "{op}: {:?}", reply.decode::<WireError>());
    reply.payload_as(rpc::kind::STORE_RESPONSE).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_asking_for_a_one_year_alarm_lease_gets_the_runtimes_maximum() {
    use francis::model::{ActorKey, ActorTypeRegistration, AlarmLease, AlarmRecord, FetchAlarms};
    use francis::runtime::{MAX_ALARMS_FETCH_AHEAD, MAX_ALARMS_LEASE_DURATION};

    let clock = francis::clock::ManualClock::starting_now();
    let shared: francis::clock::SharedClock = std::sync::Arc::new(clock.clone());
    let run = runtime_with(|b| {
        b.host_psk(HOST_PSK)
            .clock(shared)
            .health_check_deadline(Duration::from_secs(3600))
    })
    .await;
    let counter = ActorTypeRegistration {
        actor_type: "counter".into(),
        idle_timeout: None,
        concurrency_limit: 0,
    };
    let (_endpoint, conn) = registered_session_with(&run, "hoarder", vec![counter]).await;
    let now = || francis::clock::Clock::now_ms(&clock);
    let year = Duration::from_secs(365 * 24 * 3600);
    let key = ActorKey::new("counter", "1");
    for (name, due) in [
        ("now", now()),
        ("next-year", now() + 365 * 24 * 3600 * 1000),
    ] {
        let alarm = AlarmRecord::new("wake", due);
        let args = rmp_serde::to_vec(&(&key, name, alarm)).unwrap();
        store_call::<()>(&conn, "set_alarm", args).await;
    }

    // A year's lease, on everything due within a century: the runtime grants its maximum lease,
    // on the alarms due within its fetch-ahead.
    let fetch = |lease_duration| FetchAlarms {
        hosts: Vec::new(),
        horizon_ms: i64::MAX,
        lease_duration,
        batch_size: 10,
    };
    let leases: Vec<AlarmLease> = store_call(
        &conn,
        "fetch_and_lease_alarms",
        rmp_serde::to_vec(&(fetch(year),)).unwrap(),
    )
    .await;
    let names: Vec<&str> = leases.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["now"], "fetched beyond {MAX_ALARMS_FETCH_AHEAD:?}");
    let max_ms = i64::try_from(MAX_ALARMS_LEASE_DURATION.as_millis()).unwrap();
    assert!(leases[0].expires_ms <= now() + max_ms, "{:?}", leases[0]);

    // Renewing for a year is capped the same way.
    let renewed: Vec<AlarmLease> = store_call(
        &conn,
        "renew_alarm_leases",
        rmp_serde::to_vec(&(rpc::SessionHost::default(), year)).unwrap(),
    )
    .await;
    assert!(
        renewed.iter().all(|l| l.expires_ms <= now() + max_ms),
        "{renewed:?}"
    );

    // Once the maximum has passed, the alarm is free to be fetched again.
    clock.advance(MAX_ALARMS_LEASE_DURATION + Duration::from_secs(1));
    let again: Vec<AlarmLease> = store_call(
        &conn,
        "fetch_and_lease_alarms",
        rmp_serde::to_vec(&(fetch(Duration::from_secs(20)),)).unwrap(),
    )
    .await;
    let names: Vec<&str> = again.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["now"]);
    let _ = run.stop.send(());
    run.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_replica_with_another_clusters_key_refuses_to_start_on_the_shared_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runtime.db");
    let replica = |psk: &'static str| {
        Runtime::builder()
            .bind("127.0.0.1:0".parse().unwrap())
            .runtime_psk(psk)
            .host_psk(HOST_PSK)
            .sqlite(db.clone())
            .build()
    };
    let first = replica(RUNTIME_PSK)
        .await
        .expect("the first replica records the cluster");
    let other = "security-test-another-cluster-psk-0123456789";
    let Err(refused) = replica(other).await else {
        panic!("a replica of another cluster does not start");
    };
    let refused = refused.to_string();
    assert!(
        refused.contains(&first.cluster_ca().fingerprint())
            && refused.contains(&ClusterCa::from_psks(&[other]).unwrap().fingerprint()),
        "both fingerprints are in the error: {refused}"
    );
    // A second replica of the same cluster starts.
    replica(RUNTIME_PSK)
        .await
        .expect("a replica of the cluster starts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_calls_with_invalid_actor_names_are_refused() {
    let run = runtime().await;
    let (_endpoint, conn) = registered_session(&run, "sloppy").await;
    let long = "x".repeat(francis::MAX_NAME_BYTES + 1);
    let bad_keys = [
        ("", "1"),
        ("counter", ""),
        ("a/b", "1"),
        ("counter", "1/2"),
        ("counter", "line\nbreak"),
        (long.as_str(), "1"),
        ("counter", long.as_str()),
    ];
    for (actor_type, id) in bad_keys {
        let key = francis::model::ActorKey::new(actor_type, id);
        for (op, args) in [
            ("get_state", rmp_serde::to_vec(&(&key,)).unwrap()),
            ("delete_state", rmp_serde::to_vec(&(&key,)).unwrap()),
            (
                "set_state",
                rmp_serde::to_vec(&(&key, serde_bytes::ByteBuf::from(vec![1]), None::<Duration>))
                    .unwrap(),
            ),
            (
                "lookup_actor",
                rmp_serde::to_vec(&(&key, francis::model::LookupOptions::default())).unwrap(),
            ),
            ("get_alarm", rmp_serde::to_vec(&(&key, "a")).unwrap()),
        ] {
            let error = error_of(exchange(&conn, &store_request(op, args)).await);
            assert_eq!(error.code, ErrorCode::BadRequest, "{op} {key:?}: {error}");
            assert!(error.message.contains("invalid actor"), "{op}: {error}");
        }
    }
    let args = rmp_serde::to_vec(&("a/b", francis::model::ListStatesOptions::default())).unwrap();
    let error = error_of(exchange(&conn, &store_request("list_states", args)).await);
    assert!(error.message.contains("invalid actor type"), "{error}");
    let key = francis::model::ActorKey::new("counter", "1");
    let args = rmp_serde::to_vec(&(&key, "", francis::model::AlarmRecord::new("wake", 0))).unwrap();
    let error = error_of(exchange(&conn, &store_request("set_alarm", args)).await);
    assert!(error.message.contains("invalid alarm name"), "{error}");
    let args = rmp_serde::to_vec(&(&key, "a", francis::model::AlarmRecord::new("x/y", 0))).unwrap();
    let error = error_of(exchange(&conn, &store_request("set_alarm", args)).await);
    assert!(error.message.contains("invalid alarm handler"), "{error}");

    // Valid names still work.
    let args = rmp_serde::to_vec(&(&key,)).unwrap();
    let state: Option<serde_bytes::ByteBuf> = store_call(&conn, "get_state", args).await;
    assert!(state.is_none());
    let _ = run.stop.send(());
    run.task.await.unwrap();
}
