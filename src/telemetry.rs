//! Logging setup (tracing).
use tracing_subscriber::EnvFilter;

/// [`init_with`] the services' default filter (`info`, librdkafka's own logs at `warn`).
pub fn init() {
    init_with("info,rdkafka=warn")
}

/// Installs the global tracing subscriber. `LIVE2VOD_LOG` (or `RUST_LOG`) filters, else
/// `default_filter`; `LIVE2VOD_LOG_FORMAT=json` switches to JSON lines. Logs go to stderr.
pub fn init_with(default_filter: &str) {
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
