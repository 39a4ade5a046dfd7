//! serve: the box's HTTP API — recordings as time ranges, and clips assembled on the fly from
//! stored fragments — for `nvrctl recordings`/`nvrctl pull` and for players such as VLC; the live
//! state as Server-Sent Events; and the browser page built on both.
//!
//! Receives requests on the `[http] listen` address; reads the [`Store`] (listing, init
//! segments, fragments); emits JSON and MP4 bytes. Holds no state besides the store handle and
//! the token. Runs on the caller's tokio runtime; store I/O happens on the blocking pool.
//!
//! Files: `auth` (the token: config, file or generated; constant-time check), `times` (query
//! times), `range` (the `Range` header), `moof` (rewriting fragment numbers and times), `clip`
//! (clip plan and reader), `pieces` (one stored fragment read piecewise and verified), `outputs`
//! (switching an output), `routes` (handlers and errors), `limits` (the accept loop: connection
//! cap, header and write-stall timeouts), `live` (the state bus as SSE), `ui` (the page, its
//! login and the security headers).

pub mod auth;
pub mod clip;
pub mod limits;
pub mod live;
pub mod moof;
pub mod outputs;
pub mod pieces;
pub mod range;
mod routes;
pub mod times;
pub mod ui;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

pub use auth::{resolve_token, Token, TokenError, GENERATED_TOKEN_FILE};
pub use limits::HttpLimits;
pub use routes::{ApiState, MAX_CLIP_DOWNLOADS};

use crate::state::StateBus;
use crate::store::Store;

/// A bound HTTP API, not yet serving.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    state: ApiState,
    limits: HttpLimits,
}

impl HttpServer {
    /// Binds `addr` and logs `listening http <addr:port>` (the bound port, so port 0 works).
    pub async fn bind(addr: SocketAddr, store: Store, token: Token) -> std::io::Result<HttpServer> {
        let listener = TcpListener::bind(addr).await?;
        tracing::info!("listening http {}", listener.local_addr()?);
        Ok(HttpServer {
            listener,
            state: ApiState::new(store, token),
            limits: HttpLimits::default(),
        })
    }

    /// Lets `POST /api/outputs/{name}` switch outputs through `outputs`.
    pub fn with_outputs(mut self, outputs: Option<crate::gpio::OutputControl>) -> HttpServer {
        self.state.outputs = outputs;
        self
    }

    /// The same server with other client bounds than [`HttpLimits::default`] (tests).
    pub fn with_limits(mut self, limits: HttpLimits) -> HttpServer {
        self.limits = limits;
        self
    }

    /// Serves the state of `bus` at `GET /api/live`.
    pub fn with_live_state(mut self, bus: StateBus) -> HttpServer {
        self.state.live = Some(live::LiveFeed::new(bus));
        self
    }

    /// Serves the browser page at `/` (`[http] ui`; off unless asked for).
    pub fn with_ui(mut self, ui: bool) -> HttpServer {
        self.state.ui = ui;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then stops accepting and waits for requests in flight
    /// (a clip download in progress finishes, its client goes away, or it stalls past
    /// [`HttpLimits::write_stall_timeout`]).
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Live streams never end by themselves: tell them before waiting for requests in flight.
        let stopping = self.state.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        limits::serve(
            self.listener,
            routes::router(self.state),
            self.limits,
            shutdown,
        )
        .await;
        Ok(())
    }
}
