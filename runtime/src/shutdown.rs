//! Shutdown: SIGTERM or SIGINT cancels a token that every task watches, so the speaker can
//! withdraw its announcements before the process exits.

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM/SIGINT. A second signal exits at once.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; stopping gracefully (send again to exit now)");
        t.cancel();
        wait_for_signal().await;
        tracing::warn!("second shutdown signal; exiting immediately");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C will stop gracefully");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
