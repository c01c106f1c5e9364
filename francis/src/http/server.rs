//! The control API's configuration ([`ControlApi`]: its bearer token, allowed hosts and
//! origins) and its server ([`ControlListener`]), which refuses to listen off loopback without
//! a token.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use super::auth::Role;
use super::guard::{self, HttpToken, InvalidToken, TOKEN_ENV, normalize_host};
use crate::actor::service::Service;
use crate::profile::{Endpoint, Profile, Setup};

/// How the control API protects itself: who may call it, and how they prove it.
///
/// The defaults suit a server on loopback, for the developer's own machine: requests must be
/// addressed to a loopback `Host` (`localhost`, 127.0.0.0/8, `[::1]`, any port), a browser's
/// `Origin` must be the server's own, no token is asked for, and every method but GET, HEAD and
/// OPTIONS must send `Content-Type: application/json`. [`router`](super::router) serves them.
///
/// To serve on an address other machines reach, give it a [`token`](Self::token): then
/// [`bind`](Self::bind) and [`listener`](Self::listener) accept a non-loopback address, and
/// every request must carry `Authorization: Bearer <token>`. List the names it is called by
/// with [`allowed_hosts`](Self::allowed_hosts).
///
/// ```no_run
/// # async fn demo(service: francis::actor::Service) -> Result<(), Box<dyn std::error::Error>> {
/// use francis::http::ControlApi;
///
/// // The token from FRANCIS_HTTP_TOKEN, if set; without it only loopback addresses bind.
/// let server = ControlApi::from_env()?.bind("127.0.0.1:8080".parse()?).await?;
/// server.serve(service, francis::host::shutdown_signal()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ControlApi {
    /// Bearer tokens and the role each gives.
    pub(super) tokens: Vec<(HttpToken, Role)>,
    pub(super) allowed_hosts: Vec<String>,
    pub(super) allowed_origins: Vec<String>,
    /// Whether the server speaks TLS: its own origin is then `https://<host>`.
    pub(super) tls: bool,
}

/// Why a control server could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum ControlApiError {
    /// The token is not usable.
    #[error(transparent)]
    InvalidToken(#[from] InvalidToken),
    /// A token's environment variable is not valid UTF-8.
    #[error("{0} is not valid UTF-8; set it to a token of at least 16 ASCII characters")]
    TokenNotUnicode(&'static str),
    /// A token's environment variable holds something that is not a usable token.
    #[error("{var}: {source}")]
    InvalidTokenIn {
        /// The variable.
        var: &'static str,
        /// What is wrong with its value.
        #[source]
        source: InvalidToken,
    },
    /// The address is not loopback and no token is configured: the unsafe setting
    /// `control_server_open_off_loopback`, refused in every profile.
    #[error(
        "refusing to serve the control API on {address} without a bearer token (control_server_open_off_loopback, refused in every profile): that address is not loopback, so anyone who reaches it could invoke and halt actors; set {TOKEN_ENV} (ControlApi::token), or serve on 127.0.0.1"
    )]
    TokenRequired {
        /// The address it was asked to serve on.
        address: SocketAddr,
    },
    /// The address could not be bound.
    #[error(
        "cannot listen for the control API on {address}: {source}; is another process using it?"
    )]
    Bind {
        /// The address it was asked to serve on.
        address: SocketAddr,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The listener's own address could not be read.
    #[error("cannot read the control API listener's address: {0}")]
    LocalAddr(#[source] io::Error),
}

impl ControlApi {
    /// The defaults: loopback hosts only, same-origin only, no token.
    pub fn new() -> Self {
        ControlApi::default()
    }

    /// The defaults, with the tokens of the environment when they are set:
    /// `FRANCIS_HTTP_TOKEN` ([`TOKEN_ENV`], role admin), `FRANCIS_HTTP_OPERATOR_TOKEN`
    /// ([`OPERATOR_TOKEN_ENV`]) and `FRANCIS_HTTP_VIEWER_TOKEN` ([`VIEWER_TOKEN_ENV`]).
    /// Errors when one is set to something that is not a usable token.
    pub fn from_env() -> Result<Self, ControlApiError> {
        let mut api = ControlApi::new();
        for (var, role) in [
            (TOKEN_ENV, Role::Admin),
            (OPERATOR_TOKEN_ENV, Role::Operator),
            (VIEWER_TOKEN_ENV, Role::Viewer),
        ] {
            match std::env::var(var) {
                Ok(token) => {
                    let token = HttpToken::new(&token)
                        .map_err(|source| ControlApiError::InvalidTokenIn { var, source })?;
                    api = api.role_token(role, token);
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ControlApiError::TokenNotUnicode(var));
                }
            }
        }
        Ok(api)
    }

    /// Require `Authorization: Bearer <token>` on every request but the probes, and give the
    /// holder of `token` the role admin. Needed to serve on an address that is not loopback.
    pub fn token(self, token: HttpToken) -> Self {
        self.role_token(Role::Admin, token)
    }

    /// Like [`token`](Self::token), for a token that gives `role`: a viewer reads (status,
    /// metrics, the cluster state), an operator also calls actors, halts them and sets their
    /// alarms. With any token configured, a request without one of them is refused (401), and
    /// one whose role is too low for its route too (403).
    pub fn role_token(mut self, role: Role, token: HttpToken) -> Self {
        self.tokens.push((token, role));
        self
    }

    /// Host names (or addresses) the server also answers to, besides loopback ones: the names
    /// it is called by from other machines, or through a proxy. Compared case-insensitively and
    /// with any port (a port given here is ignored); an IPv6 address with or without brackets.
    pub fn allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allowed_hosts.extend(hosts.into_iter().map(|h| {
            let h = h.as_ref();
            guard::split_authority(h)
                .map_or_else(|| normalize_host(h), |(name, _)| normalize_host(name))
        }));
        self
    }

    /// Origins (`scheme://host[:port]`) of web pages that may call the server besides its own,
    /// such as a dashboard on another port. Their requests get CORS headers, and their
    /// preflights an answer. An entry that is not an HTTP(S) origin matches nothing.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for origin in origins {
            match guard::normalize_origin(origin.as_ref()) {
                Some(origin) => self.allowed_origins.push(origin),
                None => tracing::warn!(
                    origin = origin.as_ref(),
                    "ignoring an allowed origin that is not scheme://host[:port] (http or https)"
                ),
            }
        }
        self
    }

    /// The control API's routes bound to `service`, behind this configuration's guard.
    ///
    /// Serve it yourself only on a loopback address unless a token is configured, or use
    /// [`bind`](Self::bind), which checks. When it is served with the peer's address
    /// (`into_make_service_with_connect_info::<SocketAddr>()`, as [`ControlListener::serve`]
    /// does), a server without a token also refuses peers that are not on loopback.
    pub fn router(&self, service: Service) -> Router {
        self.protect(super::routes(service))
    }

    /// The same configuration for a server that speaks TLS (the runtime's operations server
    /// with `http.tls`): pages it serves have the origin `https://<host>`.
    #[cfg_attr(not(feature = "runtime"), allow(dead_code))]
    pub(crate) fn serving_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// `routes` behind this configuration's guard.
    pub(crate) fn protect(&self, routes: Router) -> Router {
        routes.layer(axum::middleware::from_fn_with_state(
            Arc::new(self.clone()),
            guard::guard,
        ))
    }

    /// Listen on `address`. Refuses, before binding, an address that is not loopback (such as
    /// `0.0.0.0`) when no token is configured.
    pub async fn bind(self, address: SocketAddr) -> Result<ControlListener, ControlApiError> {
        self.check_address(address)?;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ControlApiError::Bind { address, source })?;
        Ok(ControlListener {
            api: self,
            listener,
        })
    }

    /// Serve on a listener bound already (bind first, for a busy port to fail early). Refuses,
    /// and closes, one whose address is not loopback when no token is configured.
    pub fn listener(self, listener: TcpListener) -> Result<ControlListener, ControlApiError> {
        let address = listener.local_addr().map_err(ControlApiError::LocalAddr)?;
        self.check_address(address)?;
        Ok(ControlListener {
            api: self,
            listener,
        })
    }

    /// The profile check of a control server about to listen on `address`: what it finds is
    /// refused in every profile.
    fn check_address(&self, address: SocketAddr) -> Result<(), ControlApiError> {
        let setup = Setup {
            control_server: Some(Endpoint {
                address,
                authenticated: !self.tokens.is_empty(),
            }),
            ..Setup::default()
        };
        if Profile::Dev.check(&setup).is_err() {
            tracing::warn!(%address, "refusing to serve the control API off loopback without a token");
            return Err(ControlApiError::TokenRequired { address });
        }
        Ok(())
    }
}

/// Whether one of the token variables [`ControlApi::from_env`] reads is set (to anything:
/// whether it is a usable token is checked when the server is configured).
#[cfg(feature = "runtime")]
pub(crate) fn token_in_env() -> bool {
    [TOKEN_ENV, OPERATOR_TOKEN_ENV, VIEWER_TOKEN_ENV]
        .iter()
        .any(|var| std::env::var_os(var).is_some())
}

/// The environment variable of a token with the role operator ([`ControlApi::from_env`]).
pub const OPERATOR_TOKEN_ENV: &str = "FRANCIS_HTTP_OPERATOR_TOKEN";

/// The environment variable of a token with the role viewer ([`ControlApi::from_env`]).
pub const VIEWER_TOKEN_ENV: &str = "FRANCIS_HTTP_VIEWER_TOKEN";

/// A control server's listener, its address checked against its [`ControlApi`].
#[derive(Debug)]
pub struct ControlListener {
    api: ControlApi,
    listener: TcpListener,
}

impl ControlListener {
    /// The checked listener itself, for a server of other routes behind the same guard.
    #[cfg_attr(not(feature = "runtime"), allow(dead_code))]
    pub(crate) fn into_listener(self) -> TcpListener {
        self.listener
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve the control API of `service` until `shutdown` completes, then finish the requests
    /// under way. Each request's peer address is known to the guard.
    pub async fn serve<F>(self, service: Service, shutdown: F) -> io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let app = self.api.router(service);
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}
