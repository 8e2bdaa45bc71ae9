//! The Kubernetes client: kubeconfig (flag or `KUBECONFIG`) or in-cluster config, with a
//! client-side token-bucket rate limit like client-go's QPS/burst.

use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use futures::FutureExt as _;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How to reach the Kubernetes API. Flattened into each binary's `Args`.
#[derive(Clone, Debug, clap::Args)]
pub struct ClientArgs {
    /// Path to a kubeconfig file. Without it, `KUBECONFIG`, then `~/.kube/config`, then the
    /// in-cluster service account are tried, in that order (as kubectl does).
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use instead of the current one.
    #[arg(long, env = "KUBE_CONTEXT")]
    pub kube_context: Option<String>,

    /// Sustained requests per second to the API server, a client-side limit; 0 (the
    /// default) = none. Kubernetes servers protect themselves with API Priority and
    /// Fairness (every supported version has it on), which queues a busy client fairly
    /// instead of failing it; a fixed client cap only slows bulk work (at 20/s, 1,000 new
    /// Services took two minutes to get their IPs). Set one for a server without APF.
    #[arg(long, env = "KUBE_API_QPS", default_value_t = 0.0)]
    pub kube_api_qps: f64,

    /// Requests allowed in a burst above the sustained rate (with --kube-api-qps).
    #[arg(long, env = "KUBE_API_BURST", default_value_t = 30)]
    pub kube_api_burst: u32,
}

impl Default for ClientArgs {
    fn default() -> Self {
        ClientArgs {
            kubeconfig: None,
            kube_context: None,
            kube_api_qps: 0.0,
            kube_api_burst: 30,
        }
    }
}

impl ClientArgs {
    /// Resolve the client configuration.
    pub async fn config(&self) -> anyhow::Result<kube::Config> {
        let options = KubeConfigOptions {
            context: self.kube_context.clone(),
            ..Default::default()
        };
        match &self.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .with_context(|| format!("loading kubeconfig {}", path.display()))
            }
            None if self.kube_context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .context("loading kubeconfig"),
            None => kube::Config::infer()
                .await
                .context("no kubeconfig found and not running in a cluster"),
        }
    }

    /// Build a rate-limited client.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let config = self.config().await?;
        let builder = ClientBuilder::try_from(config).context("building the Kubernetes client")?;
        if self.kube_api_qps <= 0.0 {
            return Ok(builder.build());
        }
        let layer = RateLimitLayer::new(self.kube_api_qps, self.kube_api_burst.max(1));
        Ok(builder.with_layer(&layer).build())
    }
}

/// Token bucket shared by all clones of the client.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(qps: f64, burst: u32) -> Self {
        TokenBucket {
            qps,
            burst: burst as f64,
            state: Mutex::new((burst as f64, Instant::now())),
        }
    }

    /// Wait until a token is available and take it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut st = self.state.lock().await;
                let now = Instant::now();
                let elapsed = now.duration_since(st.1).as_secs_f64();
                st.0 = (st.0 + elapsed * self.qps).min(self.burst);
                st.1 = now;
                if st.0 >= 1.0 {
                    st.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - st.0) / self.qps)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A tower layer that makes every request wait for a token.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    bucket: Arc<TokenBucket>,
}

impl RateLimitLayer {
    pub fn new(qps: f64, burst: u32) -> Self {
        RateLimitLayer {
            bucket: Arc::new(TokenBucket::new(qps, burst)),
        }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
            waiting: None,
            has_token: false,
        }
    }
}

/// The rate-limited service: readiness first waits for a token, then for the inner service,
/// so a request is only admitted once it may be sent.
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<TokenBucket>,
    waiting: Option<BoxFuture<'static, ()>>,
    has_token: bool,
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("has_token", &self.has_token)
            .finish()
    }
}

impl<S, Req> tower::Service<Req> for RateLimit<S>
where
    S: tower::Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.has_token {
            let bucket = &self.bucket;
            let fut = self.waiting.get_or_insert_with(|| {
                let b = bucket.clone();
                Box::pin(async move { b.acquire().await })
            });
            match fut.poll_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    self.waiting = None;
                    self.has_token = true;
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.has_token = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_then_paces_at_qps() {
        let b = TokenBucket::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            b.acquire().await;
        }
        assert_eq!(Instant::now(), start, "the burst is immediate");
        for _ in 0..10 {
            b.acquire().await;
        }
        let took = Instant::now().duration_since(start);
        assert!(
            took >= Duration::from_millis(990) && took <= Duration::from_millis(1010),
            "10 more requests at 10 qps take about a second, took {took:?}"
        );
    }
}
