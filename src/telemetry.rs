//! Logging setup (tracing).
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber. `LIVE2VOD_LOG` (or `RUST_LOG`) filters, else
/// `default_filter`; `LIVE2VOD_LOG_FORMAT=json` switches to JSON lines. Logs go to stderr.
pub fn init(default_filter: &str) {
    let filter = std::env::var("LIVE2VOD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_filter.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LIVE2VOD_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
